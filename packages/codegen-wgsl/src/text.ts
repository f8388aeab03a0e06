/** Small helpers for building WGSL text. */

/** [0, 1, …, n − 1]. */
export const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Indent every non-empty line of `code`. */
export const indent = (code: string, by = "  ") => code.split("\n").map((l) => (l ? by + l : l)).join("\n");

/** `indent` over a list of lines (any of which may hold several), one line per element out. */
export const indentLines = (lines: readonly string[], by = "  ") => indent(lines.join("\n"), by).split("\n");
