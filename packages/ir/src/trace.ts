/** Tracing: run a mod once on symbolic inputs and record what it computes as a ModGraph. */
import { GraphBuilder } from "./builder.js";
import { withBuilder } from "./trace-context.js";
import type { ModGraph } from "./types.js";
import { FlexAttnError } from "./types.js";
import { Value, type ValueLike } from "./value.js";
import { CONTROL_FLOW_HINT, type ModKindName, checkModSignature, checkModSource, modName } from "./mod-check.js";
import { printGraph } from "./print.js";

export type MaskMod = (b: Value, h: Value, q: Value, kv: Value) => ValueLike;
export type ScoreMod = (score: Value, b: Value, h: Value, q: Value, kv: Value) => ValueLike;

function runTraced(fn: Function, kind: ModKindName, args: (b: GraphBuilder) => Value[]): [GraphBuilder, ValueLike] {
  const builder = new GraphBuilder();
  const result = withBuilder(builder, () => {
    try {
      return fn(...args(builder)) as unknown;
    } catch (e) {
      if (e instanceof FlexAttnError) {
        e.message = `in ${kind} ${modName(fn)}: ${e.message}`;
        throw e;
      }
      const message = e instanceof Error ? e.message : String(e);
      throw new FlexAttnError(`in ${kind} ${modName(fn)}: the mod threw while being traced: ${message}`);
    }
  });
  if (result === undefined) throw new FlexAttnError(`${kind} ${modName(fn)} returned undefined (missing return?)`);
  if (result instanceof Promise) {
    result.catch(() => {}); // its rejection, if any, is this error's business, not an unhandled one
    throw new FlexAttnError(`${kind} ${modName(fn)} returned a Promise: a mod must be synchronous (no async, no await)`);
  }
  if (!(result instanceof Value) && typeof result !== "number" && typeof result !== "boolean") {
    throw new FlexAttnError(`${kind} ${modName(fn)} returned ${result === null ? "null" : typeof result}, not a traced value`);
  }
  if (result instanceof Value && result.builder !== builder) {
    throw new FlexAttnError(`${kind} ${modName(fn)} returned a value traced in another mod`);
  }
  checkNothingDropped(fn, kind, builder, result instanceof Value ? result.id : undefined);
  return [builder, result];
}

/** Refuse a mod that computed a traced value and then dropped it (see mod-check.ts). */
function checkNothingDropped(fn: Function, kind: ModKindName, builder: GraphBuilder, result: number | undefined): void {
  const dropped = builder.droppedValues(result);
  if (dropped.length === 0) return;
  const shown = printGraph(builder.finish(kind === "mask mod" ? "mask" : "score", dropped[0])).split("\n").at(-1)!.replace(/^\s*return /, "");
  throw new FlexAttnError(
    `${kind} ${modName(fn)} computed ${shown} but its result does not use it: was it used in if, ?:, &&, ||, ! or ===? ` +
      `${CONTROL_FLOW_HINT}. (A value computed and never used is refused too: remove it.)`,
  );
}

/** Trace `(b, h, q, kv) => bool`. */
export function traceMaskMod(fn: MaskMod): ModGraph {
  checkModSignature(fn, "mask mod");
  checkModSource(fn, "mask mod");
  const [builder, result] = runTraced(fn, "mask mod", (g) =>
    (["b", "h", "q", "kv"] as const).map((n) => new Value(g, g.input(n))),
  );
  let root: number;
  if (typeof result === "boolean") root = builder.constant("bool", result ? 1 : 0);
  else if (result instanceof Value && result.dtype === "bool") root = result.id;
  else {
    const got = result instanceof Value ? `an ${result.dtype} value` : `the number ${result}`;
    throw new FlexAttnError(
      `mask mod ${modName(fn)} must return a boolean but returned ${got}; compare it, e.g. q.ge(kv)`,
    );
  }
  return builder.finish("mask", root);
}

/** Trace `(score, b, h, q, kv) => f32`; an i32 result is converted to f32. */
export function traceScoreMod(fn: ScoreMod): ModGraph {
  checkModSignature(fn, "score mod");
  checkModSource(fn, "score mod");
  const [builder, result] = runTraced(fn, "score mod", (g) =>
    (["score", "b", "h", "q", "kv"] as const).map((n) => new Value(g, g.input(n))),
  );
  if (typeof result === "boolean" || (result instanceof Value && result.dtype === "bool")) {
    throw new FlexAttnError(
      `score mod ${modName(fn)} returned a boolean; a score mod returns a score. ` +
        `To mask, write a mask mod, or return where(cond, score, -Infinity)`,
    );
  }
  const root = typeof result === "number" ? builder.constant("f32", result) : builder.unary("toF32", (result as Value).id);
  return builder.finish("score", root);
}

/** The identity score mod, traced. */
export function identityScoreGraph(): ModGraph {
  return traceScoreMod((score, _b, _h, _q, _kv) => score);
}
