/**
 * Helpers of the end-to-end fuzz tests: strided tensors with poisoned padding, an exactness check
 * of BlockMask tables against a dense evaluation of their mask (IR evaluator), and the comparison
 * of a kernel's out / LSE with the float64 reference.
 */
import fc from "fast-check";
import {
  type BlockMaskTables, type ModGraph, type ReferenceResult, type StorageDType, type Tensor, evaluateBatch, fromFloat32, mulberry32,
  randomNormal,
} from "flexattn";

/** Memory order of the b, h, s dimensions (d is always innermost), padding, and where the view starts. */
export interface Layout {
  /** Outermost first, a permutation of ["b", "h", "s"]. */
  order: readonly ("b" | "h" | "s")[];
  /** Extra elements after each row (s), head (h) and batch (b) entry. */
  pad: { b: number; h: number; s: number };
  /** Elements of the underlying ArrayBuffer before the view (a subarray with a byteOffset). */
  lead: number;
  /** Stride 0 over b / h: one entry broadcast to all (PyTorch's expand()). */
  expand: { b: boolean; h: boolean };
}

export const layoutArb: fc.Arbitrary<Layout> = fc.record({
  order: fc.constantFrom<readonly ("b" | "h" | "s")[]>(
    ["b", "h", "s"], ["b", "s", "h"], ["h", "b", "s"], ["s", "b", "h"], ["h", "s", "b"], ["s", "h", "b"],
  ),
  pad: fc.record({
    // Multiples of 4 keep the strides vec4-compatible (WGSL's vec4 bindings), others do not.
    b: fc.constantFrom(0, 0, 1, 4, 7),
    h: fc.constantFrom(0, 0, 3, 4, 8),
    s: fc.constantFrom(0, 0, 0, 1, 4),
  }),
  lead: fc.constantFrom(0, 0, 0, 1, 4),
  expand: fc.record({ b: fc.constantFrom(false, false, false, true), h: fc.constantFrom(false, false, false, true) }),
});

const NAN_BITS: Record<StorageDType, number> = { f32: 0, f16: 0x7e00, bf16: 0x7fc0 };

/**
 * A [B, H, S, D] tensor in `layout` with standard-normal values (stored as `dtype`); every element
 * that is not part of the tensor (padding, and the `lead` elements before the view) is NaN, so a
 * kernel that reads outside the view poisons its output.
 */
export function stridedTensor(
  shape: readonly [number, number, number, number], layout: Layout, rand: () => number, dtype: StorageDType = "f32",
): Tensor {
  const [B, H, S, D] = shape;
  const size = { b: layout.expand.b ? 1 : B, h: layout.expand.h ? 1 : H, s: S };
  const strides = { b: 0, h: 0, s: 0 };
  let step = D;
  for (let i = layout.order.length - 1; i >= 0; i--) {
    const dim = layout.order[i];
    // The innermost level's padding pads each D-row; outer levels pad after a whole entry.
    if (i === layout.order.length - 1) step += layout.pad[dim];
    strides[dim] = step;
    step = step * size[dim] + (i > 0 ? layout.pad[layout.order[i - 1]] : 0);
  }
  if (layout.expand.b) strides.b = 0;
  if (layout.expand.h) strides.h = 0;
  const total = step + layout.lead;
  const all = dtype === "f32" ? new Float32Array(total).fill(Number.NaN) : new Uint16Array(total).fill(NAN_BITS[dtype]);
  const data = all.subarray(layout.lead);
  const values = fromFloat32(randomNormal(B * H * S * D, rand), dtype);
  let n = 0;
  for (let b = 0; b < size.b; b++)
    for (let h = 0; h < size.h; h++)
      for (let s = 0; s < S; s++) {
        const at = b * strides.b + h * strides.h + s * strides.s;
        for (let d = 0; d < D; d++) data[at + d] = values[n++];
      }
  return { data, shape: [B, H, S, D], dtype, strides: [strides.b, strides.h, strides.s, 1] };
}

/**
 * Random i32 buffer data: half the time small values (plausible indices, some negative), half the
 * time document ids (non-decreasing runs from 0).
 */
export function randomInts(n: number, rand: () => number): Int32Array {
  if (rand() < 0.1) return Int32Array.from({ length: n }, () => (rand() < 0.3 ? (rand() < 0.5 ? -2147483648 : 2147483647) : Math.floor(rand() * 44) - 4));
  if (rand() < 0.5) return Int32Array.from({ length: n }, () => Math.floor(rand() * 44) - 4);
  const out = new Int32Array(n);
  const p = 0.05 + rand() * 0.3;
  for (let i = 1; i < n; i++) out[i] = out[i - 1] + (rand() < p ? 1 : 0);
  return out;
}

/**
 * Random f32 buffer data in [-2, 2], on a 1/8 grid so comparisons with constants can be equal;
 * one buffer in five also holds NaN, ±Infinity and -0 (IEEE propagation, NaN in interval analysis).
 */
export function randomFloats(n: number, rand: () => number): Float32Array {
  const specials = rand() < 0.2;
  return Float32Array.from({ length: n }, () =>
    specials && rand() < 0.3 ? [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0][Math.floor(rand() * 4)] : Math.round((rand() * 4 - 2) * 8) / 8,
  );
}

export { mulberry32 };

/**
 * Check BlockMask tables against a dense evaluation of their mask over every logical (b, h):
 * indices in range, no duplicates, partial and full disjoint; a full block has only kept
 * elements, an omitted (empty) block none; with `exact`, a partial block has both (createBlockMask
 * is exact; adjust() may leave cropped blocks conservatively partial).
 * Returns a description of the first problem, or null.
 */
export function blockMaskProblems(
  t: BlockMaskTables, mask: ModGraph | null | undefined, B: number, H: number, qLen: number, kvLen: number, exact = true,
): string | null {
  const [bq, bkv] = t.blockSize;
  const oq = t.offsets?.q ?? 0;
  const okv = t.offsets?.kv ?? 0;
  const QB = t.numQBlocks;
  const KVB = t.numKvBlocks;
  if (QB !== Math.ceil(qLen / bq) || KVB !== Math.ceil(kvLen / bkv)) return `table dims ${QB}×${KVB} for qLen ${qLen}, kvLen ${kvLen}, blocks ${bq}×${bkv}`;
  const fullNum = t.fullKvNumBlocks ?? new Int32Array(t.kvNumBlocks.length);
  const fullIdx = t.fullKvIndices ?? new Int32Array(t.kvIndices.length);
  // Dense mask values for one (b, h): kept[i * kvLen + j].
  const n = qLen * kvLen;
  const qs = new Int32Array(n);
  const ks = new Int32Array(n);
  for (let i = 0; i < qLen; i++)
    for (let j = 0; j < kvLen; j++) {
      qs[i * kvLen + j] = i + oq;
      ks[i * kvLen + j] = j + okv;
    }
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++) {
      const kept = mask ? (evaluateBatch(mask, { length: n, b, h, q: qs, kv: ks }) as Uint8Array) : new Uint8Array(n).fill(1);
      for (let r = 0; r < QB; r++) {
        const row = ((b % t.Bm) * t.Hm + (h % t.Hm)) * QB + r;
        const kind = new Uint8Array(KVB);
        const mark = (num: Int32Array, idx: Int32Array, k: number, what: string): string | null => {
          if (num[row] < 0 || num[row] > KVB) return `${what} count ${num[row]} at row ${row}`;
          for (let x = 0; x < num[row]; x++) {
            const c = idx[row * KVB + x];
            if (c < 0 || c >= KVB) return `${what} index ${c} out of range at (b ${b}, h ${h}, q-block ${r})`;
            if (kind[c]) return `kv block ${c} listed twice at (b ${b}, h ${h}, q-block ${r})`;
            kind[c] = k;
          }
          return null;
        };
        const err = mark(t.kvNumBlocks, t.kvIndices, 1, "partial") ?? mark(fullNum, fullIdx, 2, "full");
        if (err) return err;
        for (let c = 0; c < KVB; c++) {
          let yes = 0;
          let no = 0;
          for (let i = r * bq; i < Math.min(qLen, (r + 1) * bq); i++)
            for (let j = c * bkv; j < Math.min(kvLen, (c + 1) * bkv); j++) kept[i * kvLen + j] ? yes++ : no++;
          const where = `(b ${b}, h ${h}, q-block ${r}, kv-block ${c}: ${yes} kept, ${no} masked)`;
          if (kind[c] === 2 && no) return `block marked FULL has masked elements ${where} — silent wrong answer`;
          if (kind[c] === 0 && yes) return `block omitted (EMPTY) has kept elements ${where} — silent wrong answer`;
          if (exact && kind[c] === 1 && (!yes || !no)) return `block marked PARTIAL is uniform ${where} — not exact (performance only)`;
        }
      }
    }
  return null;
}

export interface Got {
  out: Float32Array;
  lse: Float32Array;
}

/**
 * Compare out [B, H, qLen, Dv] (contiguous) and LSE [B, H, qLen] with the float64 reference:
 * |out − ref| ≤ tol · max(1, max |ref|), |lse − ref| ≤ tol · max(1, |ref|), −inf exactly where the
 * reference has it, NaN only where the reference has NaN. Returns the first failures, or null.
 */
export function compareWithReference(got: Got, ref: ReferenceResult, dims: { B: number; H: number; L: number; Dv: number }, tol = 1e-4): string | null {
  const { B, H, L, Dv } = dims;
  const problems: string[] = [];
  const say = (s: string) => {
    if (problems.length < 6) problems.push(s);
  };
  if (got.out.length !== B * H * L * Dv) return `out has ${got.out.length} elements, expected ${B * H * L * Dv}`;
  let maxRef = 0;
  for (const x of ref.out) if (Number.isFinite(x)) maxRef = Math.max(maxRef, Math.abs(x));
  const lim = tol * Math.max(1, maxRef);
  let worst = 0;
  let bad = 0;
  for (let i = 0; i < ref.out.length; i++) {
    const r = ref.out[i];
    const g = got.out[i];
    if (r === g) continue; // equal infinities included (their difference is NaN)
    const at = () => {
      const d = i % Dv;
      const row = (i - d) / Dv;
      return `out[b ${Math.floor(row / (H * L))}, h ${Math.floor(row / L) % H}, q ${row % L}, d ${d}]`;
    };
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (!(Number.isNaN(r) && Number.isNaN(g))) {
        bad++;
        say(`${at()} = ${g}, reference ${r}`);
      }
      continue;
    }
    const e = Math.abs(g - r);
    if (!(e <= lim)) {
      bad++;
      say(`${at()} = ${g}, reference ${r} (error ${e.toExponential(2)} > ${lim.toExponential(2)})`);
    }
    worst = Math.max(worst, e);
  }
  for (let i = 0; i < ref.lse.length; i++) {
    const r = ref.lse[i];
    const g = got.lse[i];
    const at = `lse[b ${Math.floor(i / (H * L))}, h ${Math.floor(i / L) % H}, q ${i % L}]`;
    if (Object.is(r, g) || (Number.isNaN(r) && Number.isNaN(g))) continue;
    if (!Number.isFinite(r) || !Number.isFinite(g)) {
      bad++;
      say(`${at} = ${g}, reference ${r}`);
      continue;
    }
    const e = Math.abs(g - r);
    if (!(e <= tol * Math.max(1, Math.abs(r)))) {
      bad++;
      say(`${at} = ${g}, reference ${r} (error ${e.toExponential(2)})`);
    }
  }
  return bad ? `${bad} bad elements (max |out - ref| ${worst.toExponential(2)}, max |ref| ${maxRef.toFixed(3)}):\n  ${problems.join("\n  ")}` : null;
}

/**
 * The tables of a BlockMask rewritten as other producers write them: each row's valid entries in
 * random order, the padding after them filled with the row's other block indices (PyTorch's
 * kv_indices rows are whole permutations), and with `demote`, every full block listed as partial
 * instead (always correct: the mask is then applied where it was known to hold).
 */
export function rewriteTables(t: BlockMaskTables, demote: boolean, rand: () => number): { kvNumBlocks: Int32Array; kvIndices: Int32Array; fullKvNumBlocks: Int32Array; fullKvIndices: Int32Array } {
  const KVB = t.numKvBlocks;
  const rows = t.kvNumBlocks.length;
  const fullNum = t.fullKvNumBlocks ?? new Int32Array(rows);
  const fullIdx = t.fullKvIndices ?? new Int32Array(rows * KVB);
  const out = {
    kvNumBlocks: new Int32Array(rows), kvIndices: new Int32Array(rows * KVB),
    fullKvNumBlocks: new Int32Array(rows), fullKvIndices: new Int32Array(rows * KVB),
  };
  const shuffle = (xs: number[]) => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  };
  for (let r = 0; r < rows; r++) {
    const partial = Array.from(t.kvIndices.subarray(r * KVB, r * KVB + t.kvNumBlocks[r]));
    let full = Array.from(fullIdx.subarray(r * KVB, r * KVB + fullNum[r]));
    if (demote) {
      partial.push(...full);
      full = [];
    }
    const write = (valid: number[], num: Int32Array, idx: Int32Array) => {
      const rest = shuffle([...Array(KVB).keys()].filter((k) => !valid.includes(k)));
      num[r] = valid.length;
      idx.set([...shuffle(valid), ...rest], r * KVB);
    };
    write(partial, out.kvNumBlocks, out.kvIndices);
    write(full, out.fullKvNumBlocks, out.fullKvIndices);
  }
  return out;
}
