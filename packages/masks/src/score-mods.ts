/** The standard score mods: `(score, b, h, q, kv) => f32`, as in attention-gym. */
import type { ScoreMod } from "@flexattn/ir";
import { buffer, tanh } from "@flexattn/ir";
import { requireFinite, requireInteger } from "./validate.js";

/** ALiBi slopes 2^(-8(h+1)/numHeads), one per head. */
export function alibiSlopes(numHeads: number): Float32Array {
  requireInteger("alibiSlopes", "numHeads", numHeads, 1);
  return Float32Array.from({ length: numHeads }, (_, h) => 2 ** ((-8 * (h + 1)) / numHeads));
}

/** ALiBi: score + slope[h] * (kv - q), slopes captured as a buffer so new head counts reuse kernels. */
export function alibi(numHeads: number): ScoreMod {
  requireInteger("alibi", "numHeads", numHeads, 1);
  const slopes = buffer(alibiSlopes(numHeads), { name: "alibiSlopes" });
  return (score, _b, h, q, kv) => score.add(slopes.at(h).mul(kv.sub(q)));
}

/** Soft-capping (Gemma 2): cap * tanh(score / cap). */
export function softcap(cap: number): ScoreMod {
  requireFinite("softcap", "cap", cap, true);
  return (score, _b, _h, _q, _kv) => tanh(score.div(cap)).mul(cap);
}

/** Relative position bias: score + (q - kv). */
export function relativePosition(): ScoreMod {
  return (score, _b, _h, q, kv) => score.add(q.sub(kv));
}
