/**
 * Build apps/bench/results/wgsl-h200.{md,json} from the raw device outputs in
 * apps/bench/results/wgsl-h200-raw/: the protocol with the library's default configs beside the
 * PyTorch anchors of the same call (call 5), the settled config sweep (call 6), and the
 * subgroupMatrix kernels (calls 7 and 8), the robustness experiments on them (calls 10, 11, 13, 14),
 * the d=64 default's neighbourhood (call 12), the layout experiments that found why the matrix
 * kernels were wrong (calls 17–19, probe calls 17–21 in ../wgsl-h200-mma-probe), and the protocol
 * with the fixed matrix kernel beside the anchors of the same call (calls 20 and 22; call 21 the
 * repeated sweep); V staged in K's place (calls 23–25, call 25 the protocol on the new defaults);
 * K and V split in advance and read from global memory (call 27, presplitKV: slower); call 25's
 * protocol again on a fresh machine (call 28); where a tile's time goes, and the next tile's K and V
 * loaded a tile ahead (call 29 ablations, call 30 sweep: prefetchNext); the protocol on the new
 * defaults (call 31, and call 32 on a fresh machine); workgroup-memory bank conflicts (call 33
 * probe: padS, staggerS, staggerSplit, 32-key tiles; call 34 sweep and protocol, the new defaults;
 * call 35 the protocol on them).
 *
 *   npx tsx apps/bench/src/wgsl-h200-report.ts
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const RESULTS = join(import.meta.dirname, "..", "results");
const RAW = join(RESULTS, "wgsl-h200-raw");
const read = (path: string) => readFileSync(join(RAW, path), "utf8");

interface TorchRow { variant: string; n: number; d: number; density: number; flex_tflops?: number; sdpa_eff_tflops?: number }
interface SweepRow { variant: string; d: number; config: string; tflops: number; rounds?: number; pass?: number; retime?: boolean }

// Call 5: protocol rows as printed by the device command (its JSON did not come back), anchors as JSON.
const protocol = read("call5-protocol/wgsl-stdout.txt").split("\n")
  .map((l) => l.match(/^\S+ (\S+) (\d+) (\d+) ([\d.]+) TFLOP\/s ([\d.e-]+)$/))
  .filter((m): m is RegExpMatchArray => m !== null)
  .map((m) => ({ variant: m[1], n: Number(m[2]), d: Number(m[3]), tflops: Number(m[4]), spotError: Number(m[5]) }));
const torch = JSON.parse(read("call5-protocol/torch-anchors.json")) as { torch: string; gpu: string; rows: TorchRow[] };
const settled = JSON.parse(read("call6-settled-sweep/wgsl-bench.json")) as { device: string; defaults: Record<string, string>; sweep: SweepRow[] };

const f = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(2));
const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}×` : "–");

interface BenchRow { variant: string; n: number; d: number; config: string; tflops: number; spotError?: number }
type AnchoredRow = BenchRow & { sdpaEff?: number; flex?: number };
/** The PyTorch anchor of a WGSL row: the same variant, N and head dim, from the same call. */
const anchorIn = (anchors: TorchRow[], r: BenchRow) => anchors.find((a) => a.variant === r.variant && a.n === r.n && a.d === r.d);
const withAnchors = (results: BenchRow[], anchors: TorchRow[]): AnchoredRow[] =>
  results.map((r) => ({ ...r, sdpaEff: anchorIn(anchors, r)?.sdpa_eff_tflops, flex: anchorIn(anchors, r)?.flex_tflops }));
/** A protocol run beside its anchors, as a table. */
const protocolTable = (rows: AnchoredRow[]) => [
  "| variant | N | d | config | WGSL TFLOP/s | SDPA-eff f32 | flex f32 | WGSL / SDPA-eff | WGSL / flex | spot err |",
  "|---|---|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => `| ${r.variant} | ${r.n} | ${r.d} | \`${r.config}\` | ${f(r.tflops)} | ${f(r.sdpaEff)} | ${f(r.flex)} | ${ratio(r.tflops, r.sdpaEff)} | ${ratio(r.tflops, r.flex)} | ${r.spotError === undefined ? "–" : r.spotError.toExponential(1)} |`),
];

const rows = withAnchors(protocol.map((p) => ({ ...p, config: settled.defaults[p.d] })), torch.rows);
const table = protocolTable(rows);

/**
 * A sweep as a table, configs × variants; with two passes (call 6) one figure where they agree
 * within 5%, both otherwise; a figure timed again on the same pipeline (calls 24–) as "slow → again".
 */
function sweepTable(sweep: SweepRow[], defaults: Record<string, string>): string[] {
  const variants = [...new Set(sweep.map((s) => s.variant))];
  const configs = [...new Set(sweep.map((s) => `${s.d}|${s.config}`))];
  const find = (d: number, config: string, variant: string, pass: number, retime: boolean) =>
    sweep.find((s) => s.d === d && s.config === config && s.variant === variant && (s.pass ?? 1) === pass && Boolean(s.retime) === retime)?.tflops;
  const cell = (d: number, config: string, variant: string, pass: number) => {
    const [first, again] = [find(d, config, variant, pass, false), find(d, config, variant, pass, true)];
    return { value: again ?? first, text: first === undefined ? "–" : again === undefined ? f(first) : `${f(first)} → ${f(again)}` };
  };
  return [
    `| d | config | ${variants.join(" | ")} |`,
    `|---|---|${variants.map(() => "---").join("|")}|`,
    ...configs.map((k) => {
      const [d, config] = [Number(k.split("|")[0]), k.split("|")[1]];
      const cells = variants.map((v) => {
        const [a, b] = [cell(d, config, v, 1), cell(d, config, v, 2)];
        if (a.value === undefined) return "–";
        return b.value === undefined || Math.abs(a.value - b.value) < 0.05 * a.value ? a.text : `${a.text} / ${b.text}`;
      });
      return `| ${d} | \`${config}\`${defaults[d] === config ? " (default)" : ""} | ${cells.join(" | ")} |`;
    }),
  ];
}

// Call 6: every swept config on every variant, two passes with fresh pipelines.
const settledTable = sweepTable(settled.sweep, settled.defaults);

// Calls 7 and 8: the subgroupMatrix kernels (conformance on them, then swept beside the plain configs).
interface MatrixCall { defaults: Record<string, string>; sweep: SweepRow[]; conformance: { passed: number; failed: number; onSubgroupMatrix: string[]; results: { name: string; outError: number }[] } }
const matrixCalls = ["call7-subgroup-matrix", "call8-subgroup-matrix-let"].map((dir) => ({ dir, ...(JSON.parse(read(`${dir}/wgsl-bench.json`)) as MatrixCall) }));
/** A conformance run on matrix configs in one line: counts and the largest f32 output error. */
const conformanceLine = (c: MatrixCall["conformance"]) => `${c.passed} passed, ${c.failed} failed; ${c.onSubgroupMatrix.length} of ` +
  `${c.results.length} cases on subgroupMatrix configs; largest output error of the f32 cases ` +
  `${Math.max(...c.results.filter((r) => !/^b?f16-/.test(r.name)).map((r) => r.outError)).toExponential(1)}`;
const matrixConformance = matrixCalls.map((c) => `- \`${c.dir}\`: ${conformanceLine(c.conformance)}`);
const matrixTables = matrixCalls.map((c) => [`**${c.dir}**`, "", ...sweepTable(c.sweep, c.defaults)].join("\n"));

// Call 12: the d=64 default's neighbourhood (wgsl-bench --wide-d64), protocol on each variant's best.
const wide = JSON.parse(read("call12-wide-d64/wgsl-bench.json")) as { defaults: Record<string, string>; sweep: SweepRow[] };
const wideTable = sweepTable(wide.sweep, wide.defaults);

// Calls 10 and 11: wgsl-matrix-bisect --experiments (robustness, control): each edited kernel's
// speed and how its output differs from the robust library kernel's.
interface BisectRow { name: string; tflops?: number; maxDiffVsLibrary?: number | null; elements?: number; nan?: number; zero?: number; off?: number }
// Calls 13 and 14 (sets "down" and "remat") compare each robustness-off run with the same edit run with robustness on.
const robustnessCalls = ([["call10-robustness-experiments", false], ["call11-control-deps", false], ["call13-narrow-down", true], ["call14-remat", true]] as const)
  .map(([dir, selfReferenced]) => ({ dir, selfReferenced, ...(JSON.parse(read(`${dir}/bisect.json`)) as { rows: BisectRow[] }) }));
function outputOf(r: BisectRow, diff: BisectRow | undefined, selfReferenced: boolean): string {
  if (!diff && selfReferenced && r.name.endsWith("robustness on")) return "reference for the same edit with robustness off";
  if (!diff) return r.maxDiffVsLibrary === 0 ? "the reference" : `max diff ${(r.maxDiffVsLibrary ?? Infinity).toExponential(1)} vs the reference`;
  const bad = (diff.nan ?? 0) + (diff.zero ?? 0) + (diff.off ?? 0);
  if (bad === 0) return r.maxDiffVsLibrary === 0 ? "identical to the reference" : `correct (max diff ${r.maxDiffVsLibrary?.toExponential(1)})`;
  if (diff.nan === diff.elements) return "**every element NaN**";
  if (!diff.nan && r.maxDiffVsLibrary) return `${diff.off} of ${diff.elements} off by > 1e-3 (max ${r.maxDiffVsLibrary.toExponential(1)}), ${diff.zero} zero`;
  return `${diff.nan} NaN, ${diff.zero} never written, ${diff.off} off by > 1e-3, of ${diff.elements}`;
}
/** Bisect calls as one table: each edited kernel's speed and how its output differs from its reference. */
const bisectTable = (calls: { dir: string; selfReferenced: boolean; rows: BisectRow[] }[]) => [
  "| call | kernel, Dawn robustness | TFLOP/s | output |",
  "|---|---|---|---|",
  ...calls.flatMap((c) => c.rows.filter((r) => r.tflops !== undefined).map((r) => {
    const diff = c.rows.find((d) => d.name === `${r.name}: differences`);
    const name = r.name.includes("robustness") ? r.name : `${r.name}, robustness on`;
    return `| ${c.dir.slice(4, 6)} | ${name} | ${f(r.tflops)} | ${outputOf(r, diff, c.selfReferenced)} |`;
  })),
];
const robustnessTable = bisectTable(robustnessCalls);

// Calls 17–19: wgsl-matrix-bisect --experiments branchfree | atomics | layout, against the robust library kernel.
const layoutCalls = ["call17-branchfree", "call18-atomics", "call19-layout"]
  .map((dir) => ({ dir, selfReferenced: false, ...(JSON.parse(read(`${dir}/bisect.json`)) as { rows: BisectRow[] }) }));
const layoutTable = bisectTable(layoutCalls);

// Probe calls 17–21: order-probe.mjs attn variants, robustness on and off (one line each in the logs).
const PROBE = join(RESULTS, "wgsl-h200-mma-probe");
const probeRuns = [17, 18, 19, 20, 21].flatMap((call) => readFileSync(join(PROBE, `call${call}-order-probe-attn-log.txt`), "utf8").split("\n")
  .map((l) => l.match(/^robustness (on|off)\s+(\S+)\s+stride 16 data (within 1e-4|WRONG) ?(\d+)?/))
  .filter((m): m is RegExpMatchArray => m !== null)
  .map((m) => ({ call, robust: m[1] === "on", phase: m[2], ok: m[3] !== "WRONG", wrong: Number(m[4] ?? 0) })));
const probeTable = [
  "| probe call | attn variant | robustness on | robustness off |",
  "|---|---|---|---|",
  ...[...new Set(probeRuns.map((r) => `${r.call}|${r.phase}`))].map((key) => {
    const [call, phase] = key.split("|");
    const cell = (robust: boolean) => {
      const r = probeRuns.find((x) => `${x.call}` === call && x.phase === phase && x.robust === robust);
      return !r ? "–" : r.ok ? "right" : `**wrong** (${r.wrong} of 18874368)`;
    };
    return `| ${call} | \`${phase}\` | ${cell(true)} | ${cell(false)} |`;
  }),
];

// Calls 20 and 22: the protocol with the fixed matrix kernel beside the PyTorch anchors of the same
// call; call 20 on each variant's best swept config (with the robustness-off rows), call 22 on the
// library's defaults.
interface BenchCall { results: BenchRow[]; robustnessOff?: BenchRow[]; sweep?: SweepRow[]; defaults: Record<string, string>; conformance?: MatrixCall["conformance"] }
function protocolOf(dir: string) {
  const bench = JSON.parse(read(`${dir}/wgsl-bench.json`)) as BenchCall;
  const anchors = (JSON.parse(read(`${dir}/torch-anchors.json`)) as { rows: TorchRow[] }).rows;
  const rows = withAnchors(bench.results, anchors);
  return { bench, anchors, rows, table: protocolTable(rows) };
}
const call20 = protocolOf("call20-protocol-matrix");
const call22 = protocolOf("call22-protocol-defaults");
// Calls 23–25: V staged in K's place (shareKV). 23 swept it (and 128×32 tiles) with conformance on
// shareKV configs; 24 swept twice and timed slow figures again; 25 ran conformance and the
// protocol on the new defaults, robustness off, and the layout regression set.
const call23 = protocolOf("call23-share-kv");
const call24 = protocolOf("call24-retime");
const call25 = protocolOf("call25-protocol-defaults");
// Call 28: call 25's protocol command again, on a fresh machine.
const call28 = protocolOf("call28-protocol-repeat");
/** Robustness-off rows beside the SDPA anchor of the same call. */
const unsafeTable = (call: ReturnType<typeof protocolOf>) => [
  "| variant | N | d | config | WGSL TFLOP/s, robustness off | SDPA-eff f32 | WGSL / SDPA-eff | spot err |",
  "|---|---|---|---|---|---|---|---|",
  ...(call.bench.robustnessOff ?? []).map((r) => {
    const a = anchorIn(call.anchors, r)?.sdpa_eff_tflops;
    return `| ${r.variant} | ${r.n} | ${r.d} | \`${r.config}\` | ${f(r.tflops)} | ${f(a)} | ${ratio(r.tflops, a)} | ${r.spotError?.toExponential(1)} |`;
  }),
];
const layout25 = bisectTable([{ dir: "call25-protocol-defaults", selfReferenced: false, ...(JSON.parse(read("call25-protocol-defaults/bisect/bisect.json")) as { rows: BisectRow[] }) }]);
// Call 27: K and V split once by a pass of their own, the kernel's fragments loaded from global memory (presplitKV).
interface PresplitRow { name: string; robustness: string; variant: string; d: number; tflops: number; kernelMs: number; splitMs?: number; maxDiffVsLibrary?: number; spotError: number }
const presplit27 = (() => {
  const rows = (JSON.parse(read("call27-presplit/presplit.json")) as { rows: PresplitRow[] }).rows;
  const library = rows.filter((r) => r.name.startsWith("library default"));
  const pick = (l: PresplitRow, tile: string) => rows.find((r) => r.name.includes(tile) && r.robustness === l.robustness && r.variant === l.variant && r.d === l.d);
  return [
    "| robustness | variant | d | library default TFLOP/s | presplitKV 128×16: TFLOP/s (kernel + split ms) | / library | presplitKV 128×32: TFLOP/s | / library | max \\|diff\\| vs library (16 / 32) | spot err |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...library.map((l) => {
      const [a, b] = [pick(l, "128x16"), pick(l, "128x32")];
      if (!a || !b) throw new Error(`call 27: no presplit rows for ${l.robustness} ${l.variant} d=${l.d}`);
      return `| ${l.robustness.replace("robustness ", "")} | ${l.variant} | ${l.d} | ${f(l.tflops)} | ${f(a.tflops)} (${a.kernelMs.toFixed(2)} + ${a.splitMs!.toFixed(3)}) | ${ratio(a.tflops, l.tflops)} | ` +
        `${f(b.tflops)} | ${ratio(b.tflops, l.tflops)} | ${a.maxDiffVsLibrary!.toExponential(1)} / ${b.maxDiffVsLibrary!.toExponential(1)} | ${Math.max(a.spotError, b.spotError).toExponential(1)} |`;
    }),
  ];
})();
// Calls 29 and 33: wgsl-ablation-probe, the library kernel with one piece of work removed (timed
// only) and candidates that keep its meaning (spot-checked, compared with the library kernel's output).
interface AblationRow { variant: string; d: number; name: string; tflops?: number; vsLibrary?: number; spotError?: number; maxDiffVsLibrary?: number; error?: string }
const ablationTable = (dir: string) => [
  "| case | kernel | TFLOP/s | / library default | output |",
  "|---|---|---|---|---|",
  ...(JSON.parse(read(`${dir}/ablation/ablation.json`)) as { rows: AblationRow[] }).rows.map((r) => {
    if (r.error) throw new Error(`${dir}: ${r.variant} d=${r.d} ${r.name} failed`);
    let output = "not meaningful (ablation)";
    if (r.spotError !== undefined) {
      const versus = r.name === "library default" ? "the reference"
        : r.maxDiffVsLibrary === 0 ? "bit-identical to the library's" : `max diff ${r.maxDiffVsLibrary!.toExponential(1)} vs the library's`;
      output = `spot err ${r.spotError.toExponential(1)}, ${versus}`;
    }
    return `| ${r.variant} d=${r.d} | ${r.name} | ${f(r.tflops)} | ${r.vsLibrary!.toFixed(2)}× | ${output} |`;
  }),
];
// Call 30: conformance on 64x16 T128 sharedKV prefetchNext, the sweep of 128/64/32-row tiles with and
// without prefetchNext. Call 31: the protocol on the new defaults (prefetchNext at head dim 64).
const call30 = JSON.parse(read("call30-prefetch-next/wgsl-bench.json")) as BenchCall;
const call31 = protocolOf("call31-protocol-prefetch-next");
// Call 32: call 31's command again, on a fresh machine.
const call32 = protocolOf("call32-protocol-repeat");
// Call 33: the probe on bank conflicts (S rows padded by default, padS; staggerS, staggerSplit, 32-key
// tiles), conformance with the staggers forced. Call 34: the sweep of the staggered 16- and 32-key
// tiles and the protocol on each variant's best swept config beside the anchors.
const conformance33 = conformanceLine((JSON.parse(read("call33-bank-conflicts/conformance/wgsl-bench.json")) as BenchCall).conformance!);
const call34 = protocolOf("call34-sweep-staggered");
/** The configs call 34 made the defaults, by head dim. */
const defaults34: Record<string, string> = {
  64: "128x32 T256 mma sharedKV prefetchNext staggerS staggerSplit",
  128: "128x16 T256 mma sharedKV prefetchNext staggerS staggerSplit",
};
/** Call 34's sweep figures of the new defaults (the second where a slow first was timed again), beside the anchors of the same call. */
const defaultsSwept34 = protocolTable(withAnchors(
  (call34.bench.sweep ?? []).filter((s) => s.config === defaults34[s.d] && !s.retime).map((s) => {
    const again = call34.bench.sweep!.find((x) => x.retime && x.config === s.config && x.variant === s.variant && x.d === s.d);
    return { variant: s.variant, n: 4096, d: s.d, config: s.config, tflops: (again ?? s).tflops };
  }),
  call34.anchors,
));
// Call 35: the protocol on the new defaults (call 25's command), conformance first.
const call35 = protocolOf("call35-protocol-bank-conflicts");
const unsafe20Table = unsafeTable(call20);
const sweep20Table = sweepTable(call20.bench.sweep ?? [], call20.bench.defaults);
// Call 21: the same sweep twice on fresh devices (second pass in reverse variant order).
const call21 = JSON.parse(read("call21-repeat-sweep-matrix/wgsl-bench.json")) as BenchCall;
const sweep21Table = sweepTable(call21.sweep ?? [], call21.defaults);
const conformance20 = conformanceLine(call20.bench.conformance!);

writeFileSync(join(RESULTS, "wgsl-h200.json"), JSON.stringify({
  gpu: torch.gpu, torch: torch.torch, device: settled.device,
  protocolDefaults: { call: "call35-protocol-bank-conflicts", rows: call35.rows, robustnessOff: call35.bench.robustnessOff },
  protocolDefaultsSwept: { call: "call34-sweep-staggered", rows: call34.rows, robustnessOff: call34.bench.robustnessOff },
  protocolDefaultsBeforeBankConflicts: { call: "call31-protocol-prefetch-next", rows: call31.rows, robustnessOff: call31.bench.robustnessOff },
  protocolDefaultsBeforeBankConflictsRepeat: { call: "call32-protocol-repeat", rows: call32.rows, robustnessOff: call32.bench.robustnessOff },
  protocolDefaultsBeforePrefetchNext: { call: "call25-protocol-defaults", rows: call25.rows, robustnessOff: call25.bench.robustnessOff },
  protocolDefaultsBeforePrefetchNextRepeat: { call: "call28-protocol-repeat", rows: call28.rows, robustnessOff: call28.bench.robustnessOff },
  protocolDefaultsAfterSweep: { call: "call24-retime", rows: call24.rows },
  protocolDefaultsBeforeShareKV: { call: "call22-protocol-defaults", rows: call22.rows },
  protocolSwept: { call: "call20-protocol-matrix", rows: call20.rows, robustnessOff: call20.bench.robustnessOff },
  defaults: settled.defaults, protocol: rows, sweep: settled.sweep,
  subgroupMatrix: matrixCalls.map((c) => ({ call: c.dir, conformance: { passed: c.conformance.passed, failed: c.conformance.failed, onSubgroupMatrix: c.conformance.onSubgroupMatrix.length }, sweep: c.sweep })),
}, null, 1));
const template = readFileSync(join(import.meta.dirname, "wgsl-h200-report.md.in"), "utf8");
/** Every {{NAME}} of the template, and what fills it (lists of lines joined by newlines). */
const fills: Record<string, string | string[]> = {
  PROTOCOL: table, SWEEP: settledTable, MATRIX_CONFORMANCE: matrixConformance, MATRIX_SWEEPS: matrixTables.join("\n\n"),
  MATRIX_ROBUSTNESS: robustnessTable, WIDE_D64: wideTable,
  PROTOCOL_31: call31.table, ROBUSTNESS_OFF_31: unsafeTable(call31), CONFORMANCE_31: conformanceLine(call31.bench.conformance!),
  PROTOCOL_32: call32.table, ROBUSTNESS_OFF_32: unsafeTable(call32), CONFORMANCE_32: conformanceLine(call32.bench.conformance!),
  PROTOCOL_35: call35.table, ROBUSTNESS_OFF_35: unsafeTable(call35), CONFORMANCE_35: conformanceLine(call35.bench.conformance!),
  ABLATION_33: ablationTable("call33-bank-conflicts"), CONFORMANCE_33: conformance33,
  SWEEP_34: sweepTable(call34.bench.sweep ?? [], defaults34), DEFAULTS_SWEPT_34: defaultsSwept34, PROTOCOL_34: call34.table, ROBUSTNESS_OFF_34: unsafeTable(call34),
  ABLATION_29: ablationTable("call29-ablation"), SWEEP_30: sweepTable(call30.sweep ?? [], call30.defaults), CONFORMANCE_30: conformanceLine(call30.conformance!),
  PROTOCOL_DEFAULTS: call25.table, ROBUSTNESS_OFF_25: unsafeTable(call25), CONFORMANCE_25: conformanceLine(call25.bench.conformance!),
  LAYOUT_25: layout25,
  PROTOCOL_28: call28.table, ROBUSTNESS_OFF_28: unsafeTable(call28), CONFORMANCE_28: conformanceLine(call28.bench.conformance!),
  PROTOCOL_24: call24.table, SWEEP_24: sweepTable(call24.bench.sweep ?? [], call24.bench.defaults),
  PROTOCOL_23: call23.table, SWEEP_23: sweepTable(call23.bench.sweep ?? [], call23.bench.defaults), CONFORMANCE_23: conformanceLine(call23.bench.conformance!),
  PRESPLIT_27: presplit27, PROTOCOL_22: call22.table,
  PROTOCOL_SWEPT: call20.table, ROBUSTNESS_OFF: unsafe20Table, SWEEP_MATRIX: sweep20Table, CONFORMANCE_MATRIX: conformance20,
  SWEEP_REPEAT: sweep21Table, LAYOUT_BISECT: layoutTable, PROBE_ATTN: probeTable,
};
const used = new Set<string>();
const report = template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
  const fill = fills[name];
  if (fill === undefined) throw new Error(`wgsl-h200-report.md.in: nothing fills {{${name}}}`);
  used.add(name);
  return Array.isArray(fill) ? fill.join("\n") : fill;
});
const unused = Object.keys(fills).filter((k) => !used.has(k));
if (unused.length) throw new Error(`wgsl-h200-report.md.in has no {{${unused.join("}}, {{")}}}`);
writeFileSync(join(RESULTS, "wgsl-h200.md"), report);
console.log(call35.table.join("\n"));
console.log(call28.table.join("\n"));
console.log(unsafe20Table.join("\n"));
console.log(layoutTable.join("\n"));
console.log(probeTable.join("\n"));
console.log(table.join("\n"));
console.log(settledTable.join("\n"));
console.log(matrixConformance.join("\n"));
