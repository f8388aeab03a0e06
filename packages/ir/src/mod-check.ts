/**
 * Checks of a mod function before and after it is traced. Tracing calls the mod once on symbolic
 * values, so JS control flow on them (`if (q.ge(kv))`, `c ? a : b`, `&&`, `||`, `===`) runs once,
 * on a value that is always truthy, and silently records the wrong mod. What can be caught is:
 *  - a traced value the mod computed but never passed on (dropped: it went into a JS condition,
 *    or nowhere) — exact, found by the tracer (GraphBuilder.droppedValues);
 *  - in the source: a comparison method call used directly as a JS condition or `&&` / `||`
 *    operand, and a parameter compared with `===` / `!==` (parameters are traced values, so the
 *    answer is fixed) — the cases that leave no trace in the graph.
 */
import { FlexAttnError } from "./types.js";

export type ModKindName = "mask mod" | "score mod";

export const MOD_PARAMETERS: Record<ModKindName, { count: number; list: string; example: string }> = {
  "mask mod": { count: 4, list: "(b, h, q, kv)", example: "(_b, _h, q, kv) => q.ge(kv)" },
  "score mod": { count: 5, list: "(score, b, h, q, kv)", example: "(score, _b, _h, _q, _kv) => score.mul(2)" },
};

/** What to write instead of JS control flow on traced values. */
export const CONTROL_FLOW_HINT =
  "traced values are symbolic and always truthy, so JS control flow on them is decided once, at trace time. " +
  "Write where(cond, a, b) instead of if/else or cond ? a : b; a.and(b), a.or(b), a.not() instead of &&, ||, !; " +
  "a.eq(b) / a.ne(b) instead of === / !==";

export function modName(fn: Function): string {
  return fn.name ? `"${fn.name}"` : "(anonymous)";
}

function sourceOf(fn: Function): string | null {
  const text = Function.prototype.toString.call(fn);
  return /\{\s*\[native code\]\s*\}\s*$/.test(text) ? null : text;
}

/** The source with string, template and comment contents blanked (same length, so offsets hold). */
function blankLiterals(src: string): string {
  let out = "";
  for (let i = 0; i < src.length; ) {
    const c = src[i];
    const two = src.slice(i, i + 2);
    let end = -1;
    if (two === "//") end = src.indexOf("\n", i) < 0 ? src.length : src.indexOf("\n", i);
    else if (two === "/*") end = src.indexOf("*/", i + 2) < 0 ? src.length : src.indexOf("*/", i + 2) + 2;
    else if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < src.length && src[j] !== c) j += src[j] === "\\" ? 2 : 1;
      end = Math.min(j + 1, src.length);
    }
    if (end < 0) {
      out += c;
      i++;
    } else {
      const quote = c === '"' || c === "'" || c === "`";
      out += quote ? c + " ".repeat(Math.max(0, end - i - 2)) + (end - i >= 2 ? c : "") : " ".repeat(end - i);
      i = end;
    }
  }
  return out;
}

const OPEN: Record<string, string> = { "(": ")", "[": "]", "{": "}" };

/** Index of the bracket closing the one at `open`, or -1. */
function matching(text: string, open: number): number {
  const stack: string[] = [];
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (OPEN[c]) stack.push(OPEN[c]);
    else if (c === ")" || c === "]" || c === "}") {
      if (stack.pop() !== c) return -1;
      if (stack.length === 0) return i;
    }
  }
  return -1;
}

/** Split at commas outside brackets. */
function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (OPEN[c]) depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

export interface DeclaredParameter {
  /** The identifier, or the destructuring pattern as written. */
  readonly name: string;
  readonly rest: boolean;
  readonly hasDefault: boolean;
}

/** The parameters as the source declares them (defaults and rest included); null if unreadable. */
export function declaredParameters(fn: Function): DeclaredParameter[] | null {
  const src = sourceOf(fn);
  if (src === null) return null;
  const text = blankLiterals(src);
  const single = /^\s*(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(text);
  if (single) return [{ name: single[1], rest: false, hasDefault: false }];
  const open = text.indexOf("(");
  const close = open < 0 ? -1 : matching(text, open);
  if (close < 0) return null;
  return splitTopLevel(text.slice(open + 1, close)).map((p) => {
    const rest = p.startsWith("...");
    const body = rest ? p.slice(3).trim() : p;
    const eq = /(^|[^=!<>])=(?![=>])/.exec(body);
    const name = (eq ? body.slice(0, eq.index + eq[1].length) : body).trim();
    return { name, rest, hasDefault: eq !== null };
  });
}

/**
 * Check that `fn` is a mod of this kind by its declared parameters (defaults and rest
 * parameters count as declared: fn.length alone would misread them). `where` prefixes errors.
 */
export function checkModSignature(fn: unknown, kind: ModKindName, where = `${kind}`): asserts fn is Function {
  const { count, list, example } = MOD_PARAMETERS[kind];
  if (typeof fn !== "function") {
    throw new FlexAttnError(`${where} must be a function ${list} => ..., got ${fn === null ? "null" : typeof fn}`);
  }
  const declared = declaredParameters(fn);
  const rest = declared?.find((p) => p.rest);
  if (rest) {
    throw new FlexAttnError(
      `${where} ${modName(fn)} declares a rest parameter (...${rest.name}); a ${kind} is called with exactly ${count} ` +
        `parameters ${list}: name each one, e.g. ${example}`,
    );
  }
  const n = declared?.length ?? fn.length;
  if (n !== count) {
    const other = count === 4 && n === 5 ? " (5 parameters is a score mod)" : count === 5 && n === 4 ? " (4 parameters is a mask mod)" : "";
    const names = declared ? ` (it declares (${declared.map((p) => p.name).join(", ")}))` : "";
    throw new FlexAttnError(
      `${where} ${modName(fn)} takes ${n} parameter${n === 1 ? "" : "s"}, but a ${kind} takes ${count}: ` +
        `${list}${names}${other}. Name unused ones with a leading underscore, e.g. ${example}`,
    );
  }
}

const BOOL_METHOD = /\.\s*(?:lt|le|gt|ge|eq|ne|and|or|not)\s*\(/g;

/**
 * Mistakes visible in the mod's source that leave no trace in the graph: a comparison method's
 * result used as a JS condition or as the left operand of && / || (short-circuits on a value that
 * is always truthy), and a traced parameter compared with === / !== / == / !=. Returns the
 * offending snippet and what it does, or null.
 */
export function controlFlowInSource(fn: Function): string | null {
  const src = sourceOf(fn);
  const params = declaredParameters(fn);
  if (src === null || params === null) return null;
  const text = blankLiterals(src);
  const snippet = (from: number, to: number) => src.slice(Math.max(0, from), to).replace(/\s+/g, " ").trim();
  for (const m of text.matchAll(BOOL_METHOD)) {
    const open = m.index! + m[0].length - 1;
    const close = matching(text, open);
    if (close < 0) continue;
    const after = text.slice(close + 1);
    const op = /^\s*(\|\||&&|\?(?![.?]))/.exec(after);
    if (op) {
      const what = op[1] === "?" ? "as the condition of ?:" : `as the left operand of ${op[1]}`;
      return `"${snippet(m.index! - 12, close + 1 + op[0].length)}" uses a traced comparison ${what}`;
    }
    // The whole condition of if (...) / while (...), possibly negated: `if (q.ge(kv))`, `if (!x.eq(0))`.
    const before = text.slice(0, m.index!);
    const head = /\b(if|while)\s*\(\s*!?\s*[\w$.]*(?:\([^()]*\))?[\w$.]*$/.exec(before);
    if (head && /^\s*\)/.test(after)) return `"${snippet(head.index, close + 2)}" branches on a traced comparison with ${head[1]}`;
    // The condition of for (init; cond; step).
    const loop = /\bfor\s*\([^;()]*(?:\([^()]*\)[^;()]*)*;\s*!?\s*[\w$.]*(?:\([^()]*\))?[\w$.]*$/.exec(before);
    if (loop && /^\s*;/.test(after)) return `"${snippet(loop.index, close + 2)}" loops on a traced comparison with for`;
    const negated = /!\s*[\w$.]*(?:\([^()]*\))?[\w$.]*$/.exec(before);
    if (negated && !/!=\s*[\w$.]*$/.test(before.slice(negated.index - 1))) {
      return `"${snippet(negated.index, close + 1)}" negates a traced comparison with !`;
    }
  }
  for (const p of params) {
    if (!/^[A-Za-z_$][\w$]*$/.test(p.name)) continue;
    const name = p.name.replace(/\$/g, "\\$");
    // `typeof q === "object"` is a legitimate JS test of the parameter, not of its traced value.
    const cmp = new RegExp(`(?<![\\w$.])(?<!typeof\\s+)${name}\\s*[!=]==?(?!=)|[!=]==?\\s*${name}(?![\\w$])`);
    const m = cmp.exec(text);
    if (m) return `"${snippet(m.index - 8, m.index + m[0].length + 8)}" compares the traced parameter ${p.name} with ${/[!=]==?/.exec(m[0])![0]}, which is decided at trace time`;
  }
  return null;
}

/** Refuse a mod whose source shows JS control flow on traced values. */
export function checkModSource(fn: Function, kind: ModKindName, where = `${kind}`): void {
  // A mod runs once, while traced: a random draw or a clock reading becomes one constant of the kernel.
  const src = sourceOf(fn);
  const code = src === null ? "" : blankLiterals(src);
  const impure = /\b(Math\.random|Date\.now|performance\.now)\s*\(/.exec(code);
  if (impure) {
    throw new FlexAttnError(`${where} ${modName(fn)}: calls ${impure[1]}(), which runs once while the mod is traced; ` +
      "its value would be baked into the kernel as a constant (pass varying data in a buffer)");
  }
  // An unconditional loop runs while the mod is traced and, with nothing traced in it, would hang the caller.
  const forever = /\b(for\s*\(\s*;\s*;\s*\)|while\s*\(\s*(?:true|1)\s*\))/.exec(code);
  if (forever) {
    throw new FlexAttnError(`${where} ${modName(fn)}: "${forever[1].replace(/\s+/g, "")}" loops without a condition; a mod runs once, ` +
      "while traced, and must be straight-line code (write a bounded choice with where() / min() / max())");
  }
  const found = controlFlowInSource(fn);
  if (found) throw new FlexAttnError(`${where} ${modName(fn)}: ${found}; ${CONTROL_FLOW_HINT}`);
}
