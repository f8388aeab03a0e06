/**
 * Mods rendered for a [BLOCK_M, BLOCK_N] tile, split in two: statements that depend on neither
 * kv nor the score are hoisted out of the kv loop (they run once per program: a document id
 * per query row, an ALiBi slope per head), the rest run per tile.
 */
import { type InputName, type ModGraph, renderGraph } from "@flexattn/ir";
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
  const { statements, result } = renderGraph(graph, r, o.prefix);
  const perTile: boolean[] = [];
  const alongM: boolean[] = [];
  const alongN: boolean[] = [];
  const hoisted: string[] = [];
  const body: string[] = [];
  let usesKv = false;
  let s = 0; // renderGraph declares one statement per node that is neither const nor input
  graph.nodes.forEach((n, i) => {
    if (n.op === "input") {
      const inp = n.input!;
      perTile[i] = inp === "kv" || inp === "score";
      alongM[i] = inp === "q" || inp === "score";
      alongN[i] = perTile[i];
      usesKv ||= inp === "kv";
      return;
    }
    perTile[i] = n.args.some((a) => perTile[a]);
    alongM[i] = n.args.some((a) => alongM[a]);
    alongN[i] = n.args.some((a) => alongN[a]);
    if (n.op === "const") return;
    (perTile[i] ? body : hoisted).push(statements[s++]);
  });
  const root = graph.nodes.length - 1;
  return { hoisted, body, result, alongM: alongM[root], alongN: alongN[root], usesKv, helpers: r.helpers };
}
