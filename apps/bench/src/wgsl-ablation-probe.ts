/**
 * Research harness (GPU machine): where does a tile's time go in the subgroupMatrix kernel, and
 * which layout candidates help? The question is noop at head dim 64, 2.46× flex against a 3×
 * target (results/wgsl-h200.md).
 *
 * Ablations edit the library kernel's WGSL source and are timed only (their output is wrong by
 * design): one piece of work removed at a time (the Q·Kᵀ or P·V products, the global K/V loads,
 * the P stores, one barrier, the rescale flag), or workgroup memory padded to 48 KB to cap
 * residency at four workgroups per SM. Candidates keep the kernel's meaning; each is timed,
 * spot-checked against float64 and compared with the library kernel's output. Call 29 asked about
 * prefetchNext, two Q·Kᵀ accumulator chains (a source edit, since removed: slower) and 64-row
 * tiles; call 33 about workgroup-memory bank conflicts: S rows padded (padS), lanes 16–31 visiting
 * their S columns rotated (staggerS), the K/V split stores staggered (staggerSplit), and 32-key
 * tiles, which collide 16 ways unpadded. All of these are defaults since (d=64 on 32-key tiles),
 * so the candidates now turn each off; call 33 ran the same questions the other way round
 * (results/wgsl-h200-raw/call33-bank-conflicts/command.sh names its commit).
 * Every pipeline is timed twice and the second figure kept (timeWgsl).
 *
 *   node wgsl-ablation-probe.mjs --out DIR     (bundled like wgsl-bench, see device/wgsl/README.md)
 *   node wgsl-ablation-probe.mjs --check       (Dawn's null backend: every edit applies, every shader compiles;
 *                                               with DUMP=DIR in the environment, each edited source is written there)
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { KernelArtifact, KernelConfig, KernelInvocation } from "@flexattn/template";
import { artifactFor, DAWN_SUBGROUP_MATRIX_OPTIONS, type FlexDevice, prepareWgsl, requestFlexDevice, timeWgsl } from "@flexattn/webgpu";
import { invocation, maxDiff, spotCheck } from "./wgsl-cases.js";

const log = (...x: unknown[]) => console.log(new Date().toISOString().slice(11, 23), ...x);

// ---- source edits ------------------------------------------------------------------------

type Edit = (src: string) => string;

/** Replace every match of `re`; throws if there is none (an edit that silently does nothing would time the base). */
const sub = (re: RegExp, to: string): Edit => (src) => {
  const out = src.replace(re, to);
  if (out === src) throw new Error(`edit ${re} matched nothing`);
  return out;
};
const chain = (...edits: Edit[]): Edit => (src) => edits.reduce((s, e) => e(s), src);

/** Drop the n-th workgroupBarrier of each tile loop, counted from the loop's start, ignoring those inside the rescale branch. */
const dropTileBarrier = (which: "staged" | "scores" | "end"): Edit => (src) => {
  const lines = src.split("\n");
  let dropped = 0;
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].includes("for (var tt = 0;")) continue;
    const barriers: number[] = [];
    let depth = 0;
    let inRescale = false;
    for (let j = i + 1; j < lines.length; j++) {
      const l = lines[j];
      if (l.includes("if (fa_flag != 0u)")) inRescale = true;
      if (l.includes("if (tid == 0) { atomicStore(&fa_rescale[0], 0u); }")) inRescale = false;
      if (!inRescale && l.trim() === "workgroupBarrier();") barriers.push(j);
      depth += (l.match(/{/g) ?? []).length - (l.match(/}/g) ?? []).length;
      if (depth < 0) break;
    }
    const at = { staged: barriers[0], scores: barriers[1], end: barriers[barriers.length - 1] }[which];
    lines[at] = lines[at].replace("workgroupBarrier();", "// (barrier removed)");
    dropped++;
  }
  if (!dropped) throw new Error("no tile loop found");
  return lines.join("\n");
};

/** Pad workgroup memory to `bytes` in all (touched on a branch never taken, so it stays allocated). */
const padShared = (bytes: number, used: number): Edit => chain(
  sub(/var<workgroup> fa_pp:/, `var<workgroup> fa_pad: array<f32, ${(bytes - used) / 4}>;\nvar<workgroup> fa_pp:`),
  sub(/let tid = i32\(lid\);/, "let tid = i32(lid);\n  if (P.q_len < 0) { fa_pad[lid] = 1.0f; }"),
);

interface Variant {
  name: string;
  /** Options over the library default's, and its tile and workgroup if given. */
  options?: Record<string, string | number | boolean>;
  shape?: Partial<Pick<KernelConfig, "blockM" | "blockN" | "numWarps">>;
  /** Only at this head dim. */
  d?: number;
  edit?: (src: string, sharedBytes: number) => string;
  /** The output keeps its meaning (spot-checked and compared with the library kernel's). */
  exact: boolean;
}

const VARIANTS: Variant[] = [
  { name: "library default", exact: true },
  { name: "no Q·Kᵀ products", exact: false, edit: sub(/^.*fa_s_0_0 = subgroupMatrixMultiplyAccumulate.*$/gm, "") },
  { name: "no P·V products", exact: false, edit: sub(/^.*fa_o_0_\d+ = subgroupMatrixMultiplyAccumulate.*$/gm, "") },
  { name: "no products at all", exact: false, edit: sub(/^.*fa_[so]_0_\d+ = subgroupMatrixMultiplyAccumulate.*$/gm, "") },
  { name: "no global K/V loads", exact: false, edit: sub(/x = fa_ld4_([kv])\([^;]*\);/g, "x = vec4<f32>(f32(r) * 1e-3f);") },
  { name: "no P stores", exact: false, edit: sub(/fa_pp\[prow [^;]*;/g, "") },
  { name: "no barrier after staging", exact: false, edit: dropTileBarrier("staged") },
  { name: "no barrier after S", exact: false, edit: dropTileBarrier("scores") },
  { name: "no barrier at tile end", exact: false, edit: dropTileBarrier("end") },
  { name: "no rescale flag load", exact: false, edit: sub(/workgroupUniformLoad\(&fa_rescale\[0\]\)/g, "0u") },
  { name: "workgroup memory padded to 48 KB", exact: false, edit: (s, used) => padShared(49152, used)(s) },
  { name: "padS off", exact: true, options: { padS: false } },
  { name: "staggerS off", exact: true, options: { staggerS: false } },
  { name: "staggerSplit off", exact: true, options: { staggerSplit: false } },
  { name: "bank-conflict layouts off", exact: true, options: { padS: false, staggerS: false, staggerSplit: false } },
  { name: "prefetchNext off", exact: true, options: { prefetchNext: false } },
  { name: "128x16", exact: true, d: 64, shape: { blockN: 16 } },
  { name: "64x16 T128", exact: true, shape: { blockM: 64, blockN: 16, numWarps: 4 }, options: { workgroupSize: 128 } },
];

/** Per case: which variants run (all at noop d=64; the candidates elsewhere), those of another head dim left out. */
const CASES: { variant: "noop" | "causal"; d: number; only?: (v: Variant) => boolean }[] = [
  { variant: "noop", d: 64 },
  { variant: "causal", d: 64, only: (v) => v.exact },
  { variant: "noop", d: 128, only: (v) => v.exact },
  { variant: "causal", d: 128, only: (v) => v.exact },
];
const runs = (c: (typeof CASES)[number]) => VARIANTS.filter((v) => (v.d ?? c.d) === c.d && (c.only ?? (() => true))(v));

/** A variant's kernel: the library default config with its shape and options, then its edit (under a hash of its own). */
function variantArtifact(inv: KernelInvocation, dev: FlexDevice, v: Variant): KernelArtifact {
  const def = artifactFor(inv, dev).config;
  const base = artifactFor(inv, dev, { config: { ...def, ...v.shape, options: { ...def.options, ...v.options } } });
  if (!v.edit) return base;
  const source = v.edit(base.source, base.launch.sharedMemoryBytes ?? 0);
  return { ...base, source, specHash: `${base.specHash}-${v.name.replace(/\W+/g, "-")}` };
}

/** A config's workgroup bytes, read from the source's declarations (f16 arrays at 2 bytes, the rest at 4). */
function sharedBytesOf(src: string): number {
  let bytes = 0;
  for (const m of src.matchAll(/var<workgroup> \w+: array<(atomic<u32>|f16|f32), (\d+)>;/g)) bytes += Number(m[2]) * (m[1] === "f16" ? 2 : 4);
  return bytes;
}

/**
 * Every variant's edit applies and its shader compiles on Dawn's null backend (no GPU); throws
 * naming the failures. `report` gets one line per shader. Returns how many were checked.
 */
export async function checkAblations(report: (line: string) => void = () => {}): Promise<number> {
  const dev = await requestFlexDevice({ backend: "null", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
  const limited = { ...dev, limits: { ...dev.limits, maxComputeWorkgroupStorageSize: 49152, subgroupMatrix: true } } as FlexDevice;
  const failed: string[] = [];
  let checked = 0;
  for (const c of CASES) {
    const { inv } = invocation({ variant: c.variant, n: 256, batch: 1, heads: 1, d: c.d });
    for (const v of runs(c)) {
      let errors: string[];
      try {
        const a = variantArtifact(inv, limited, v);
        if (process.env.DUMP) writeFileSync(join(process.env.DUMP, `${c.variant}-${c.d}-${v.name.replace(/\W+/g, "-")}.wgsl`), a.source);
        const info = await dev.device.createShaderModule({ code: a.source }).getCompilationInfo();
        errors = info.messages.filter((m) => m.type === "error").map((m) => `${m.lineNum}:${m.linePos} ${m.message}`);
        const bytes = sharedBytesOf(a.source);
        if (bytes > 49152) errors.push(`${bytes} bytes of workgroup memory`);
      } catch (e) {
        errors = [String(e)];
      }
      checked++;
      const line = `${`${c.variant} d=${c.d}`.padEnd(14)} ${v.name.padEnd(36)} ${errors.length ? errors.slice(0, 3).join(" | ") : "compiles"}`;
      if (errors.length) failed.push(line);
      report(line);
    }
  }
  dev.device.destroy();
  if (failed.length) throw new Error(`${failed.length} of ${checked} ablation shaders do not compile:\n${failed.join("\n")}`);
  return checked;
}

async function main() {
  const { values: args } = parseArgs({
    options: {
      out: { type: "string", default: "ablation-out" },
      n: { type: "string", default: "4096" },
      check: { type: "boolean", default: false },
    },
  });
  if (args.check) return void (await checkAblations((line) => log(line)));
  const N = Number(args.n);
  const [B, H] = [16384 / N, 16];
  const rows: Record<string, unknown>[] = [];
  const dev = await requestFlexDevice({ backend: "vulkan", dawnOptions: DAWN_SUBGROUP_MATRIX_OPTIONS });
  for (const c of CASES) {
    const { inv, density } = invocation({ variant: c.variant, n: N, batch: B, heads: H, d: c.d });
    const flops = 4 * B * H * N * N * c.d * density;
    let reference: Float32Array | null = null;
    let baseMs = 0;
    for (const v of runs(c)) {
      try {
        const artifact = variantArtifact(inv, dev, v);
        const prepared = await prepareWgsl(inv, { device: dev, artifact, verify: v.exact ? "always" : "never" });
        (inv.out as Float32Array).fill(Number.NaN);
        await prepared.run();
        const out = Float32Array.from(inv.out as Float32Array);
        const check = v.exact ? { spotError: spotCheck(inv), maxDiffVsLibrary: reference ? maxDiff(out, reference) : 0 } : {};
        if (v.name === "library default") reference = out;
        await timeWgsl(prepared, { iterations: 10, warmupMs: 300 });
        const t = await timeWgsl(prepared, { iterations: 10 });
        if (v.name === "library default") baseMs = t.medianMs;
        const row = {
          variant: c.variant, d: c.d, n: N, name: v.name, options: artifact.config.options, ms: t.medianMs,
          tflops: flops / (t.medianMs * 1e-3) / 1e12, vsLibrary: baseMs / t.medianMs, rounds: t.rounds, sharedBytes: sharedBytesOf(artifact.source), ...check,
        };
        rows.push(row);
        log(`${c.variant} d=${c.d}`.padEnd(14), v.name.padEnd(36), row.ms.toFixed(3), "ms", row.tflops.toFixed(2), "TFLOP/s",
          `${row.vsLibrary.toFixed(3)}x library`, v.exact ? `spot ${row.spotError?.toExponential(2)} vs library ${row.maxDiffVsLibrary?.toExponential(2)}` : "");
      } catch (e) {
        log(`${c.variant} d=${c.d}`, v.name, "failed:", String(e).slice(0, 400));
        rows.push({ variant: c.variant, d: c.d, name: v.name, error: String(e).slice(0, 2000) });
      }
    }
  }
  writeFileSync(join(args.out!, "ablation.json"), JSON.stringify({ command: process.argv.slice(1).join(" "), device: dev.description, n: N, batch: B, heads: H, rows }, null, 1));
}

// Run as a script (node or tsx), not when a test imports checkAblations.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}
