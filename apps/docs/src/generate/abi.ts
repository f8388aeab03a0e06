/** The kernel ABI table, from @flexattn/template's kernelAbi for a variant with one captured buffer. */
import { buildSpec, documentCausal, randomDocumentIds, resolveProblem, toMaskGraph } from "flexattn";
import { kernelAbi } from "@flexattn/template";
import { cell } from "./output.js";

export function abiMarkdown(): string {
  const problem = resolveProblem({ batch: 1, qHeads: 8, kvHeads: 2, qLen: 4096, kvLen: 4096, qkHeadDim: 64, vHeadDim: 64, dtype: "bf16" });
  const mask = toMaskGraph(documentCausal(randomDocumentIds(4096, 8, 1)));
  const spec = buildSpec(mask, null, problem, [128, 128], "js", undefined);
  const rows = kernelAbi(spec).map((a, i) => `| ${i} | \`${a.name}\` | ${a.kind} | ${a.type} | ${a.role} | ${cell(a.doc)} |`);
  return ["| # | name | kind | element type | role | meaning |", "| ---: | --- | --- | --- | --- | --- |", ...rows, ""].join("\n");
}
