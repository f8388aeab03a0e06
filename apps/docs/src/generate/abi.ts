/** The kernel ABI table, from @flexattn/template's kernelAbi for a variant with one captured buffer. */
import { DEFAULT_CONFIG, documentCausal, randomDocumentIds, toMaskGraph } from "flexattn";
import { kernelAbi, makeSpec } from "@flexattn/template";
import { cell } from "./output.js";

export function abiMarkdown(): string {
  const mask = toMaskGraph(documentCausal(randomDocumentIds(4096, 8, 1)));
  const spec = makeSpec({ mask, score: null, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16", sparseBlock: [128, 128], config: DEFAULT_CONFIG });
  const rows = kernelAbi(spec).map((a, i) => `| ${i} | \`${a.name}\` | ${a.kind} | ${a.type} | ${a.role} | ${cell(a.doc)} |`);
  return ["| # | name | kind | element type | role | meaning |", "| ---: | --- | --- | --- | --- | --- |", ...rows, ""].join("\n");
}
