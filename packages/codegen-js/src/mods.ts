/**
 * Mod rendering for the JS kernel: `renderGraph` with ir's `jsRenderer`, then each statement
 * placed at the outermost loop level where its inputs are defined (loop-invariant code motion):
 *   level 0 — depends on b / h only: once per program (q tile),
 *   level 1 — depends on q: once per query row and kv tile,
 *   level 2 — depends on kv or score: once per element.
 * Mods are pure and their loads are guarded, so hoisting never changes a result.
 */
import { type InputName, type ModGraph, jsRenderer, renderGraph } from "@flexattn/ir";

export type Level = 0 | 1 | 2;

export interface LeveledMod {
  /** Statements per level, in graph order. */
  levels: [string[], string[], string[]];
  /** Expression of the mod's value. */
  result: string;
  /** The level at which the result is known. */
  resultLevel: Level;
  /** Whether any node reads a captured buffer. */
  usesBuffers: boolean;
}

const INPUT_LEVEL: Record<InputName, Level> = { b: 0, h: 0, q: 1, kv: 2, score: 2 };

export interface ModNames {
  inputs: Partial<Record<InputName, string>>;
  /** Parameter name of captured buffer `slot` of this graph. */
  bufferName: (slot: number) => string;
  /** Prefix of the temporaries (unique per rendering). */
  prefix: string;
}

export function renderLeveled(graph: ModGraph, names: ModNames): LeveledMod {
  const r = jsRenderer({ inputs: names.inputs, bufferName: names.bufferName, runtime: "$rt" });
  const { statements, result } = renderGraph(graph, r, names.prefix);
  const levels: [string[], string[], string[]] = [[], [], []];
  const nodeLevel: Level[] = [];
  let next = 0;
  let usesBuffers = false;
  graph.nodes.forEach((n) => {
    let level: Level = 0;
    if (n.op === "input") level = INPUT_LEVEL[n.input!];
    else for (const a of n.args) level = Math.max(level, nodeLevel[a]) as Level;
    if (n.op === "load") usesBuffers = true;
    nodeLevel.push(level);
    if (n.op !== "const" && n.op !== "input") levels[level].push(statements[next++]);
  });
  if (next !== statements.length) throw new Error("codegen-js: renderGraph statement count does not match the graph");
  return { levels, result, resultLevel: nodeLevel[nodeLevel.length - 1], usesBuffers };
}
