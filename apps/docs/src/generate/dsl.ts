/**
 * The mod DSL page's tables, computed by the library when the site is built: what each op
 * gives on edge cases (from @flexattn/ir's semantics, the single definition every backend
 * reproduces) and the error each common mistake gets (by tracing the mistake).
 */
import { type BinaryOp, type DType, type UnaryOp, evalBinary, evalUnary } from "flexattn";
import { compileMaskMod, compileScoreMod } from "../playground/mods.js";
import { cell, code } from "./output.js";

interface OpExample {
  text: string;
  dtype: DType;
  value: number;
  /** What the value means when it is not obvious. */
  note: string;
}

const bin = (op: BinaryOp, t: DType, a: number, b: number, text: string, note = ""): OpExample =>
  ({ text, dtype: t, value: evalBinary(op, t, a, b), note });
const un = (op: UnaryOp, t: DType, x: number, text: string, note = ""): OpExample =>
  ({ text, dtype: t, value: evalUnary(op, t, x), note });

export const OP_EXAMPLES: readonly OpExample[] = [
  bin("floorDiv", "i32", -7, 2, "floorDiv(-7, 2)", "Python floor division, not C truncation"),
  bin("mod", "i32", -7, 2, "mod(-7, 2)", "the sign of the divisor, as in Python"),
  bin("mod", "i32", 7, -2, "mod(7, -2)"),
  bin("floorDiv", "i32", 5, 0, "floorDiv(5, 0)", "division by zero gives 0, never a trap"),
  bin("mod", "i32", 5, 0, "mod(5, 0)"),
  bin("add", "i32", 2147483647, 1, "q.add(1) at q = 2147483647", "i32 wraps around"),
  bin("div", "f32", 7, 2, "q.div(2) at q = 7", "div is always true division in f32"),
  bin("floorDiv", "f32", -7.5, 2, "floorDiv(-7.5, 2)", "on f32: floor of the f32 quotient"),
  un("toI32", "f32", 2.9, "toI32(2.9)", "truncates toward zero"),
  un("toI32", "f32", -2.9, "toI32(-2.9)"),
  un("toI32", "f32", 1e10, "toI32(1e10)", "saturates at the i32 range"),
  un("toI32", "f32", Number.NaN, "toI32(NaN)", "NaN becomes 0"),
  un("tanh", "f32", 0.5, "tanh(0.5)", "f32: rounded with Math.fround"),
  un("sigmoid", "f32", 0, "sigmoid(0)"),
  un("exp2", "f32", 10, "exp2(10)"),
  bin("lt", "i32", 3, 4, "q.lt(kv) at q = 3, kv = 4", "comparisons give booleans (1 = true)"),
];

export function opExamplesMarkdown(): string {
  const rows = OP_EXAMPLES.map((e) => `| ${code(e.text)} | ${e.dtype} | ${Object.is(e.value, -0) ? "-0" : String(e.value)} | ${cell(e.note)} |`);
  return ["| expression | operand type | value | note |", "| --- | --- | --- | --- |", ...rows, ""].join("\n");
}

interface Mistake {
  what: string;
  kind: "mask" | "score";
  source: string;
}

/** Common mistakes, each traced here; the page shows the message the library gives for it. */
export const MISTAKES: readonly Mistake[] = [
  { what: "a JS comparison operator", kind: "mask", source: "(b, h, q, kv) => q >= kv" },
  { what: "an if on a traced value", kind: "mask", source: "(b, h, q, kv) => { if (q > kv) return false; return true; }" },
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the documented mistake is a template literal inside a mod
  { what: "a template string", kind: "score", source: "(s, b, h, q, kv) => { console.log(`q = ${q}`); return s; }" },
  { what: "a mask mod with the wrong parameters", kind: "mask", source: "(q, kv) => q.ge(kv)" },
  { what: "a missing return", kind: "mask", source: "(b, h, q, kv) => { q.ge(kv); }" },
  { what: "a mask mod that returns a number", kind: "mask", source: "(b, h, q, kv) => q.sub(kv)" },
  { what: "a non-boolean where() condition", kind: "score", source: "(s, b, h, q, kv) => where(q.sub(kv), s, 0)" },
  { what: "and() on numbers", kind: "mask", source: "(b, h, q, kv) => q.and(kv)" },
  { what: "arithmetic on a boolean", kind: "score", source: "(s, b, h, q, kv) => s.add(q.ge(kv))" },
  { what: "a float buffer index", kind: "mask", source: "(b, h, q, kv) => { const d = buffer(new Int32Array(N)); return d.at(q.div(2)).eq(0); }" },
  { what: "a plain array as a buffer", kind: "mask", source: "(b, h, q, kv) => buffer([1, 2, 3]).at(q).eq(0)" },
  { what: "a constant index out of range", kind: "mask", source: "(b, h, q, kv) => buffer(new Int32Array(4)).at(9).eq(q)" },
  { what: "an exception inside the mod", kind: "mask", source: "(b, h, q, kv) => { throw new Error(\"not yet\"); }" },
];

/** The message the library gives for a mistake (a mistake that traces is a bug in this table). */
export function mistakeMessage(m: Mistake): string {
  const sizes = { N: 256, H: 4 };
  const r = m.kind === "mask" ? compileMaskMod(m.source, sizes) : compileScoreMod(m.source, sizes);
  if (r.ok) throw new Error(`the documented mistake "${m.what}" traced without an error`);
  return r.error;
}

export function mistakesMarkdown(): string {
  const rows = MISTAKES.map((m) => `| ${cell(m.what)} | ${code(m.source)} | ${cell(mistakeMessage(m))} |`);
  return ["| mistake | mod | the library says |", "| --- | --- | --- |", ...rows, ""].join("\n");
}
