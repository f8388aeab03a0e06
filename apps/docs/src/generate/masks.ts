/** The mask library page: every library mask's BlockMask, drawn as SVG by @flexattn/blockmask. */
import { blockMaskSvg, createBlockMask } from "@flexattn/blockmask";
import { type ExampleShape, LIBRARY_MASKS, LIBRARY_SCORE_MODS } from "@flexattn/masks";
import { code } from "./output.js";

/** The problem every picture is drawn for: 32 × 32 blocks of 64. */
export const GALLERY_SHAPE: ExampleShape = { B: 1, H: 4, qLen: 2048, kvLen: 2048 };
export const GALLERY_BLOCK = 64;

/** How a factory was called, e.g. `slidingWindow(512, { causal: false })`. */
export function callText(name: string, args: readonly unknown[]): string {
  const arg = (a: unknown): string => {
    if (a instanceof Int32Array || a instanceof Float32Array) {
      return a.length <= 4 ? `${a.constructor.name}.from([${Array.from(a).join(", ")}])` : `documentIds /* ${a.constructor.name}(${a.length}) */`;
    }
    return typeof a === "object" && a !== null
      ? `{ ${Object.entries(a).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join(", ")} }`
      : JSON.stringify(a);
  };
  return `${name.split(".")[0]}(${args.map(arg).join(", ")})`;
}

export function masksMarkdown(): string {
  const s = GALLERY_SHAPE;
  const out = [
    `Every picture below is ${s.qLen} queries (down) × ${s.kvLen} keys (across) in blocks of ${GALLERY_BLOCK}, ` +
      "drawn by `blockMaskSvg` from the BlockMask's tables when this site was built.",
    "",
  ];
  for (const entry of LIBRARY_MASKS) {
    const args = entry.exampleArgs(s);
    const mask = createBlockMask(entry.create(s), { B: 1, H: 1, qLen: s.qLen, kvLen: s.kvLen, blockSize: GALLERY_BLOCK });
    const c = mask.blockCounts();
    out.push(
      `### ${entry.name}`,
      "",
      `${code(callText(entry.name, args))} — ${entry.description}. ` +
        `Sparsity ${mask.sparsity().toFixed(1)}%: ${c.full} full, ${c.partial} partial, ${c.empty} empty blocks.`,
      "",
      `<div class="blockmask-picture" data-mask="${entry.name}">`,
      blockMaskSvg(mask, { width: 256 }),
      "</div>",
      "",
    );
  }
  out.push("## Score mods", "", "| score mod | example | computes |", "| --- | --- | --- |");
  for (const entry of LIBRARY_SCORE_MODS) {
    out.push(`| ${entry.name} | ${code(callText(entry.name, entry.exampleArgs(s)))} | ${entry.description} |`);
  }
  return `${out.join("\n")}\n`;
}
