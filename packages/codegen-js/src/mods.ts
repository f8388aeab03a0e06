/**
 * Mod rendering for the JS kernel: `renderGraph` with ir's `jsRenderer`, then each statement
 * placed at the outermost loop level where its inputs are defined (loop-invariant code motion):
 *   level 0 — depends on b / h only: once per program (q tile),
 *   level 1 — depends on q: once per query row and kv tile,
 *   level 2 — depends on kv or score: once per element.
 * Mods are pure and their loads are guarded, so hoisting never changes a result.
 */
import { INPUT_BIT, type InputName, type ModGraph, inputDependence, jsRenderer, renderGraph } from "@flexattn/ir";

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

/** The loop level of a node from the inputs it reads. */
function levelOf(deps: number): Level {
  if (deps & (INPUT_BIT.kv | INPUT_BIT.score)) return 2;
  return deps & INPUT_BIT.q ? 1 : 0;
}

export interface ModNames {
  inputs: Partial<Record<InputName, string>>;
  /** Parameter name of captured buffer `slot` of this graph. */
  bufferName: (slot: number) => string;
  /** Prefix of the temporaries (unique per rendering). */
  prefix: string;
}

export function renderLeveled(graph: ModGraph, names: ModNames): LeveledMod {
  const r = jsRenderer({ inputs: names.inputs, bufferName: names.bufferName, runtime: "$rt" });
  const { statements, nodes, result } = renderGraph(graph, r, names.prefix);
  const deps = inputDependence(graph);
  const levels: [string[], string[], string[]] = [[], [], []];
  statements.forEach((st, k) => {
    levels[levelOf(deps[nodes[k]])].push(st);
  });
  const usesBuffers = graph.nodes.some((n) => n.op === "load");
  return { levels, result, resultLevel: levelOf(deps[deps.length - 1]), usesBuffers };
}
