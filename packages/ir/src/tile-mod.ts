/**
 * A mod rendered for a thread's RM × RN register tile of scores, each node placed at the outermost
 * point where its inputs are fixed (loop-invariant code motion over inputDependence):
 *   program — reads b, h and q only: once before the kv loops, one copy per row i (a document id
 *             per query row, an ALiBi slope per head);
 *   column  — reads kv but neither q nor score: once per kv tile and key column j;
 *   element — reads the score, or both q and kv: once per score element (i, j).
 * Inlining the whole graph per element instead repeats every node, captured-buffer loads
 * included, RM·RN times per tile; compilers do not merge those guarded loads.
 * Backends that unroll a thread's tile in source (WGSL, CUDA) share this.
 */
import { INPUT_BIT, type ExprRenderer, inputDependence, renderGraph } from "./render.js";
import type { ModGraph } from "./types.js";

type Place = "program" | "column" | "element";

function placeOf(deps: number): Place {
  if (deps & INPUT_BIT.score) return "element";
  const q = (deps & INPUT_BIT.q) !== 0;
  const kv = (deps & INPUT_BIT.kv) !== 0;
  return kv ? (q ? "element" : "column") : "program";
}

export interface TileMod {
  /** Statements for the top of the kernel, after the row indices are defined. */
  program: string[];
  /** Statements for each kv tile, after the key indices are defined and before the elements: every column's. */
  columns: string[];
  /** The statements of `columns` that belong to key column j (what element (·, j) reads of it). */
  column(j: number): string[];
  /** Statements and value of element (i, j); temporaries are block-local. */
  element(i: number, j: number): { statements: string[]; result: string };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * @param tag  unique per graph in the kernel; names the hoisted temporaries
 * @param rendererAt  the renderer whose inputs are those of element (i, j)
 */
export function renderTileMod(graph: ModGraph, tag: string, RM: number, RN: number, rendererAt: (i: number, j: number) => ExprRenderer): TileMod {
  const deps = inputDependence(graph);
  const nameAt = (i: number, j: number) => (n: number): string => {
    const place = placeOf(deps[n]);
    if (place === "element") return `t${n}`;
    if (place === "column") return `${tag}_c${j}_${n}`;
    return deps[n] & INPUT_BIT.q ? `${tag}_r${i}_${n}` : `${tag}_p${n}`;
  };
  const render = (i: number, j: number) => renderGraph(graph, rendererAt(i, j), nameAt(i, j));
  // Hoisted statements, each once: graph order within a rendering keeps definitions first.
  const collect = (place: Place, cells: [number, number][]) => {
    const seen = new Set<string>();
    const out: string[] = [];
    for (const [i, j] of cells) {
      const r = render(i, j);
      r.nodes.forEach((n, k) => {
        if (placeOf(deps[n]) !== place) return;
        const name = nameAt(i, j)(n);
        if (seen.has(name)) return;
        seen.add(name);
        out.push(r.statements[k]);
      });
    }
    return out;
  };
  const column = (j: number) => collect("column", [[0, j]]);
  return {
    program: collect("program", range(RM).map((i) => [i, 0])),
    columns: range(RN).flatMap(column),
    column,
    element: (i, j) => {
      const r = render(i, j);
      return { statements: r.statements.filter((_, k) => placeOf(deps[r.nodes[k]]) === "element"), result: r.result };
    },
  };
}
