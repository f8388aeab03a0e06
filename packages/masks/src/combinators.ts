/** Combine mask mods with and / or / not, and chain score mods. */
import type { MaskMod, ScoreMod, Value, ValueLike } from "@flexattn/ir";
import { FlexAttnError, isValue, toF32 } from "@flexattn/ir";
import { requireArity } from "./validate.js";

/** A mask's result as a boolean literal or a traced bool; anything else is an error. */
function maskResult(fn: string, r: ValueLike, i: number): Value | boolean {
  if (typeof r === "boolean") return r;
  if (isValue(r) && r.dtype === "bool") return r;
  const got = isValue(r) ? `an ${r.dtype} value` : `${typeof r} ${String(r)}`;
  throw new FlexAttnError(`${fn}(): mask #${i} returned ${got}, not a boolean; compare it, e.g. q.ge(kv)`);
}

function checkMasks(fn: string, masks: readonly MaskMod[]): void {
  masks.forEach((m, i) => {
    requireArity(fn, "mask", m, 4, i);
  });
}

/**
 * a AND / OR b. A traced side always goes through the traced operation (which folds constants),
 * so no traced value is dropped: the tracer refuses dropped values as JS control flow.
 */
function combine(op: "and" | "or", a: Value | boolean, b: Value | boolean): Value | boolean {
  if (typeof a !== "boolean") return a[op](b);
  if (typeof b !== "boolean") return b[op](a);
  return op === "and" ? a && b : a || b;
}

/** True where every mask is true; `andMasks()` with no masks is all-true. */
export function andMasks(...masks: MaskMod[]): MaskMod {
  checkMasks("andMasks", masks);
  return (b, h, q, kv) => {
    let acc: Value | boolean = true;
    for (let i = 0; i < masks.length; i++) acc = combine("and", acc, maskResult("andMasks", masks[i](b, h, q, kv), i));
    return acc;
  };
}

/** True where any mask is true; `orMasks()` with no masks is all-false. */
export function orMasks(...masks: MaskMod[]): MaskMod {
  checkMasks("orMasks", masks);
  return (b, h, q, kv) => {
    let acc: Value | boolean = false;
    for (let i = 0; i < masks.length; i++) acc = combine("or", acc, maskResult("orMasks", masks[i](b, h, q, kv), i));
    return acc;
  };
}

/** True where the mask is false. */
export function notMask(mask: MaskMod): MaskMod {
  requireArity("notMask", "mask", mask, 4);
  return (b, h, q, kv) => {
    const r = maskResult("notMask", mask(b, h, q, kv), 0);
    return typeof r === "boolean" ? !r : r.not();
  };
}

/** Apply score mods in order, each seeing the previous one's score; none is the identity. */
export function composeScoreMods(...mods: ScoreMod[]): ScoreMod {
  mods.forEach((m, i) => {
    requireArity("composeScoreMods", "score mod", m, 5, i);
  });
  return (score, b, h, q, kv) => {
    let s: Value = score;
    for (let i = 0; i < mods.length; i++) {
      const r = mods[i](s, b, h, q, kv);
      if (typeof r === "boolean" || (isValue(r) && r.dtype === "bool")) {
        throw new FlexAttnError(
          `composeScoreMods(): score mod #${i} returned a boolean; a score mod returns a score (use where(cond, score, -Infinity) to mask)`,
        );
      }
      // A number result is lifted so the next mod can call methods on it.
      s = typeof r === "number" ? toF32(r) : r;
    }
    return s;
  };
}
