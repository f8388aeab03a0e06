/** Small helpers for writing Python source. */

/** A Python float literal for an f32 value (exact: every f32 is a double). */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return 'float("nan")';
  if (x === Infinity) return 'float("inf")';
  if (x === -Infinity) return 'float("-inf")';
  if (Object.is(x, -0)) return "-0.0";
  const s = String(x);
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** Indent every line by `levels` × 4 spaces (blank lines stay blank). */
export function indent(lines: readonly string[], levels = 1): string[] {
  const pad = " ".repeat(4 * levels);
  return lines.map((l) => (l.length ? pad + l : l));
}

/** A Python identifier is what the kernel argument names and buffer names must be. */
export function isPyIdentifier(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !PY_KEYWORDS.has(name);
}

const PY_KEYWORDS = new Set([
  "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
  "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda", "nonlocal", "not", "or",
  "pass", "raise", "return", "try", "while", "with", "yield",
]);

/** A double-quoted Python string literal. */
export function pyString(s: string): string {
  return JSON.stringify(s);
}
