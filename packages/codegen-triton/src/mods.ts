/**
 * Mods rendered for a [BLOCK_M, BLOCK_N] tile, split in two: statements that depend on neither
 * kv nor the score are hoisted out of the kv loop (they run once per program: a document id
 * per query row, an ALiBi slope per head), the rest run per tile.
 */
import { INPUT_BIT, type InputName, type ModGraph, inputDependence, renderGraph } from "@flexattn/ir";
import type { HelperName } from "./runtime.js";
import { tritonRenderer } from "./renderer.js";

/** Kernel variables holding the mod inputs. */
export const MOD_INPUTS: Record<InputName, string> = { score: "qk", b: "off_b", h: "off_h", q: "q_idx", kv: "kv_idx" };

export interface TileMod {
  /** Statements to run once per program, before the kv loops. */
  hoisted: string[];
  /** Statements to run per kv tile. */
  body: string[];
  /** Expression holding the mod's value. */
  result: string;
  /** Whether the result varies along the rows (q) and the columns (kv, score) of the tile. */
  alongM: boolean;
  alongN: boolean;
  /** Whether `kv_idx` must be defined in the tile body. */
  usesKv: boolean;
  helpers: Set<HelperName>;
}

export interface TileModOptions {
  /** Temporaries are named `${prefix}${node}`. */
  prefix: string;
  bufferName: (slot: number) => string;
  approxTanh?: boolean;
}

export function renderTileMod(graph: ModGraph, o: TileModOptions): TileMod {
  const r = tritonRenderer({ inputs: MOD_INPUTS, bufferName: o.bufferName, approxTanh: o.approxTanh });
  const { statements, nodes, result } = renderGraph(graph, r, o.prefix);
  const deps = inputDependence(graph);
  const perTile = (d: number) => (d & (INPUT_BIT.kv | INPUT_BIT.score)) !== 0;
  const hoisted: string[] = [];
  const body: string[] = [];
  statements.forEach((st, k) => {
    (perTile(deps[nodes[k]]) ? body : hoisted).push(st);
  });
  const usesKv = graph.nodes.some((n) => n.op === "input" && n.input === "kv");
  const root = graph.nodes.length - 1;
  const alongM = (deps[root] & (INPUT_BIT.q | INPUT_BIT.score)) !== 0;
  const alongN = perTile(deps[root]);
  return { hoisted, body, result, alongM, alongN, usesKv, helpers: r.helpers };
}
