/**
 * Mods rendered for a tile, split in two: statements that depend on none of the inputs the loop
 * varies are hoisted out of it, the rest run per tile. The forward and the backward's dq pass loop
 * over kv (a document id per query row, an ALiBi slope per head run once per program); the dkdv
 * pass loops over q (a document id per key row runs once per head).
 */
import { INPUT_BIT, type InputName, type ModGraph, inputDependence, renderGraph } from "@flexattn/ir";
import type { HelperName } from "./runtime.js";
import { tritonRenderer } from "./renderer.js";

/** Kernel variables holding the mod inputs. */
export const MOD_INPUTS: Record<InputName, string> = { score: "qk", b: "off_b", h: "off_h", q: "q_idx", kv: "kv_idx" };

export interface TileMod {
  /** Statements to run before the loop over tiles. */
  hoisted: string[];
  /** Statements to run per tile. */
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
  /** The inputs that change from tile to tile (INPUT_BIT flags); default kv and the score. */
  perTile?: number;
}

export function renderTileMod(graph: ModGraph, o: TileModOptions): TileMod {
  const r = tritonRenderer({ inputs: MOD_INPUTS, bufferName: o.bufferName, approxTanh: o.approxTanh });
  const { statements, nodes, result } = renderGraph(graph, r, o.prefix);
  const deps = inputDependence(graph);
  const varying = o.perTile ?? INPUT_BIT.kv | INPUT_BIT.score;
  const perTile = (d: number) => (d & varying) !== 0;
  const hoisted: string[] = [];
  const body: string[] = [];
  statements.forEach((st, k) => {
    (perTile(deps[nodes[k]]) ? body : hoisted).push(st);
  });
  const usesKv = graph.nodes.some((n) => n.op === "input" && n.input === "kv");
  const root = graph.nodes.length - 1;
  const alongM = (deps[root] & (INPUT_BIT.q | INPUT_BIT.score)) !== 0;
  const alongN = (deps[root] & (INPUT_BIT.kv | INPUT_BIT.score)) !== 0;
  return { hoisted, body, result, alongM, alongN, usesKv, helpers: r.helpers };
}
