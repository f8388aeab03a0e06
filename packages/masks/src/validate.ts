/** Argument checks shared by the mask factories: a bad argument fails at construction, not in a kernel. */
import { FlexAttnError, checkModSignature, checkModSource } from "@flexattn/ir";

export function requireInteger(fn: string, name: string, x: unknown, min: number): number {
  if (typeof x !== "number" || !Number.isInteger(x) || x < min || x >= 2 ** 31) {
    const bound = min === 0 ? "a non-negative integer" : min === 1 ? "a positive integer" : `an integer >= ${min}`;
    throw new FlexAttnError(`${fn}(): ${name} must be ${bound} below 2^31, got ${describe(x)}`);
  }
  return x;
}

export function requireFinite(fn: string, name: string, x: unknown, positive = false): number {
  if (typeof x !== "number" || !Number.isFinite(x) || (positive && x <= 0)) {
    throw new FlexAttnError(`${fn}(): ${name} must be a ${positive ? "positive " : ""}finite number, got ${describe(x)}`);
  }
  return x;
}

export function requireInt32Array(fn: string, name: string, x: unknown): Int32Array {
  if (!(x instanceof Int32Array)) {
    throw new FlexAttnError(`${fn}(): ${name} must be an Int32Array (convert with Int32Array.from(...)), got ${describe(x)}`);
  }
  if (x.length === 0) throw new FlexAttnError(`${fn}(): ${name} must not be empty`);
  return x;
}

/**
 * A combinator checks its mods up front, as tracing would: declared parameters, and JS control
 * flow on traced values visible in the source (the inner mods are not traced on their own).
 */
export function requireArity(fn: string, what: string, mod: unknown, arity: 4 | 5, index?: number): void {
  const where = `${fn}(): ${index === undefined ? what : `${what} #${index}`}`;
  const kind = arity === 4 ? "mask mod" : "score mod";
  checkModSignature(mod, kind, where);
  checkModSource(mod, kind, where);
}

export function describe(x: unknown): string {
  if (x === null) return "null";
  if (Array.isArray(x)) return "a plain array";
  if (typeof x === "object") return (x as object).constructor?.name ?? "an object";
  if (typeof x === "function") return "a function";
  return `${typeof x} ${String(x)}`;
}
