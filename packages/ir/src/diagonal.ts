/**
 * Buffer-gradient sites whose entry moves along the diagonals of a score tile.
 *
 * A site's offset is where(inRange, E, −1) (grad.ts). When E = a·(q − kv) + u(b, h) with a a
 * nonzero constant, every element of a tile with the same q − kv writes one entry and distinct
 * diagonals write distinct entries: a learnable [2N − 1] relative-position table, or a per-head
 * [H, 2N − 1] one. A backend can then sum its tile along the diagonals and store each sum once,
 * instead of one tile-wide reduction per entry it touches. A bucketed table (E of |q − kv| / size)
 * is not of this form: its diagonals share entries.
 */
import { subgraph } from "./builder.js";
import type { ModGraph } from "./types.js";

/** E's coefficients of q and kv; null when E is not affine in them with constant coefficients. */
type Affine = { q: number; kv: number } | null;

const UNIFORM: Affine = { q: 0, kv: 0 };

function affineForms(graph: ModGraph): Affine[] {
  const forms: Affine[] = [];
  const combine = (x: Affine, y: Affine, sign: number): Affine => (x && y ? { q: x.q + sign * y.q, kv: x.kv + sign * y.kv } : null);
  const isUniform = (f: Affine) => f !== null && f.q === 0 && f.kv === 0;
  for (const n of graph.nodes) {
    const [x, y] = n.args.map((a) => forms[a]);
    if (n.op === "input") forms.push(n.input === "q" ? { q: 1, kv: 0 } : n.input === "kv" ? { q: 0, kv: 1 } : n.input === "score" ? null : UNIFORM);
    else if (n.dtype !== "i32") forms.push(n.args.every((a) => isUniform(forms[a])) ? UNIFORM : null);
    else if (n.op === "add") forms.push(combine(x, y, 1));
    else if (n.op === "sub") forms.push(combine(x, y, -1));
    else if (n.op === "neg") forms.push(x && { q: -x.q, kv: -x.kv });
    else if (n.op === "mul") {
      // A constant factor keeps the form; a uniform but unknown one (read from a buffer) could be 0.
      const factor = (k: number) => (graph.nodes[n.args[k]].op === "const" ? Number(graph.nodes[n.args[k]].value) : null);
      const [c0, c1] = [factor(0), factor(1)];
      if (c1 !== null && y && x) forms.push({ q: x.q * c1, kv: x.kv * c1 });
      else if (c0 !== null && x && y) forms.push({ q: y.q * c0, kv: y.kv * c0 });
      else forms.push(isUniform(x) && isUniform(y) ? UNIFORM : null);
    } else forms.push(n.args.every((a) => isUniform(forms[a])) ? UNIFORM : null);
  }
  return forms;
}

/**
 * The entry graph E of a site whose offset is where(inRange, E, −1) (or E) with E = a·(q − kv) + u(b, h),
 * a ≠ 0; undefined for any other offset.
 */
export function diagonalEntry(offset: ModGraph): ModGraph | undefined {
  const root = offset.nodes.length - 1;
  const top = offset.nodes[root];
  const guarded = top.op === "where" && offset.nodes[top.args[2]].op === "const" && offset.nodes[top.args[2]].value === -1;
  const entry = guarded ? top.args[1] : root;
  const form = affineForms(offset)[entry];
  if (!form || form.q === 0 || form.q !== -form.kv) return undefined;
  return subgraph(offset.kind, offset.nodes, entry, offset.buffers);
}
