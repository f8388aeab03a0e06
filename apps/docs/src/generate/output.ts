/** Where generated pages and assets go: inside the VitePress source tree, never committed. */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

export const DOCS_ROOT = resolve(import.meta.dirname, "../..");
export const PAGES = join(DOCS_ROOT, "pages");
/** Markdown the hand-written pages include with `<!--@include: ...-->`. */
export const GENERATED = join(PAGES, "generated");
export const REPO_ROOT = resolve(DOCS_ROOT, "../..");

export function writeGenerated(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** A Markdown table cell: pipes and newlines would break the row. */
export function cell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}

/** Inline code that may itself contain backticks. */
export function code(text: string): string {
  return text.includes("`") ? `<code>${escapeHtml(text)}</code>` : `\`${text}\``;
}

export function escapeHtml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");
}
