#!/usr/bin/env node
/**
 * The flexattn CLI:
 *   flexattn demo                              document-causal + softcap end to end
 *   flexattn compile <variant.ts> --backend …  write the generated kernel and its artifact JSON
 *   flexattn blockmask <variant.ts> …          print the BlockMask picture and sparsity
 *   flexattn tune <variant.ts> --backend …     time every candidate config, record the fastest
 * User errors print one line naming the file, the mod and the problem, and exit with code 1.
 */
import { spawnSync } from "node:child_process";
import { existsSync, realpathSync, statSync } from "node:fs";
import { basename, extname, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { register as registerHooks } from "node:module";
import { MessageChannel } from "node:worker_threads";
import { FlexAttnError, type MaskMod, type ModGraph, type ScoreMod } from "@flexattn/ir";
import { type BlockMask, createBlockMask } from "@flexattn/blockmask";
import type { AttentionProblem, BackendName, DeviceTarget, KernelArtifact, StorageDType } from "@flexattn/template";
import { compileWithSpec, resolveTarget, toMaskGraph, toScoreGraph } from "./compile.js";
import { BACKEND_NAMES, getBackend } from "./registry.js";
import { runDemo } from "./demo.js";
import { DAWN_LOGS_ENV, rerunWithoutDawnLogs } from "./dawn-logs.js";
import { writeArtifact } from "./files.js";
import { runTune } from "./cli-tune.js";

/** An error the user can fix: printed as one line, exit code 1. */
export class CliError extends Error {
  override name = "CliError";
}

const HELP = `flexattn — FlexAttention for TypeScript: attention variants as small TS functions, compiled to kernels.

Usage:
  flexattn demo [--q-len N] [--heads H] [--docs K] [--backend auto|js|wgsl] [--out DIR]
      Document-causal attention with tanh softcapping: BlockMask picture and sparsity, a run on
      the best backend here checked against the float64 reference, time and GFLOP/s, and the
      generated kernel of every backend written to DIR (default ./flexattn-out).

  flexattn compile <variant.ts|.js> [--backend js|wgsl|cuda|triton] [--target T] [--out DIR] [problem options]
      Compile the variant's exported maskMod and/or scoreMod. Writes <name><ext> (the kernel
      source: .js, .wgsl, .cu or .py) and <name>.<backend>.json (the artifact: source, ABI, launch,
      config) to DIR (default ./flexattn-out). For cuda also <name>_cuda.py, the PyTorch module around
      the kernel (compiles on first use, tunes over the configs it carries), and --target sm_80
      (default: runs on every GPU from A100 on) or sm_90a (H100/H200: the wgmma kernel; its module
      keeps an sm_80 kernel for other GPUs).

  flexattn blockmask <variant.ts|.js> [--q-len N] [--kv-len N] [--block-size B] [--batch B] [--heads H] [--grid RxC]
      Build the BlockMask of the variant's maskMod and print its picture and sparsity. It takes the
      size options only (--batch and --heads default to 1: a mask of b or h alone gets its rows).

  flexattn tune <variant.ts|.js> [--backend js|wgsl] [--max N] [--budget SECONDS] [problem options]
      Time every candidate config of the backend on random inputs of the problem (at most N,
      default 16; new candidates stop after SECONDS, default 60), record the fastest in the tuning
      cache ($FLEXATTN_CACHE_DIR, else ~/.cache/flexattn/tuning.json) and print the table.
      flexAttention then uses it for these mods and problems of this size class on this device.
      Triton and CUDA modules tune on the GPU: call the generated module's tune() in Python
      (and, for a Triton module's backward, tune_backward()).

Problem options (compile, blockmask, tune):
  --batch B          batch size                      (default 1)
  --heads H          query heads                     (default 8)
  --kv-heads H       key/value heads (GQA)           (default: --heads)
  --q-len N          query length                    (default 1024)
  --kv-len N         key/value length                (default: --q-len)
  --head-dim D       q/k head dim                    (default 64)
  --v-head-dim D     v head dim                      (default: --head-dim)
  --dtype T          f32 | f16 | bf16                (default f32 for js/wgsl, bf16 for cuda/triton)
  --block-size B     BlockMask block size, B or QxKV (default 128)
  --lse              the kernel also writes the log-sum-exp

A variant file is TypeScript or JavaScript, run as is (no build step). It exports
  maskMod:  (b, h, q, kv) => boolean          e.g. export const maskMod = causal();
  scoreMod: (score, b, h, q, kv) => number    e.g. export const scoreMod = (s, b, h, q, kv) => tanh(s.div(30)).mul(30);
and imports what it needs from "flexattn".

Other:
  flexattn --help | -h      this help
  flexattn --version        the version
`;

const PROBLEM_OPTIONS = {
  batch: { type: "string" },
  heads: { type: "string" },
  "kv-heads": { type: "string" },
  "q-len": { type: "string" },
  "kv-len": { type: "string" },
  "head-dim": { type: "string" },
  "v-head-dim": { type: "string" },
  dtype: { type: "string" },
  "block-size": { type: "string" },
  lse: { type: "boolean" },
} as const;

type Flags = Record<string, string | boolean | undefined>;

function intFlag(flags: Flags, name: string, dflt: number): number {
  const raw = flags[name];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || !Number.isInteger(n) || n < 1) {
    throw new CliError(`--${name} must be a positive integer, got "${String(raw)}"`);
  }
  if (n >= 2 ** 31) throw new CliError(`--${name} must be below 2^31 (kernels index with 32-bit integers), got ${raw}`);
  return n;
}

function blockSizeFlag(flags: Flags): [number, number] {
  const raw = flags["block-size"];
  if (raw === undefined) return [128, 128];
  const m = /^(\d+)(?:x(\d+))?$/.exec(String(raw));
  if (!m) throw new CliError(`--block-size must be a number or QxKV (e.g. 128 or 64x128), got "${String(raw)}"`);
  const q = Number(m[1]);
  const kv = Number(m[2] ?? m[1]);
  if (q < 1 || kv < 1) throw new CliError(`--block-size must be positive, got "${String(raw)}"`);
  return [q, kv];
}

/** --target: a device the backend names (CUDA: sm_80, sm_90a); refused for a backend that takes none. */
function targetFlag(raw: string | undefined, backend: BackendName): DeviceTarget | undefined {
  if (raw === undefined) return undefined;
  if (!getBackend(backend).target) throw new CliError(`--target applies to --backend cuda (sm_80 or sm_90a); the ${backend} backend takes none`);
  try {
    return resolveTarget(raw, backend);
  } catch (e) {
    if (e instanceof FlexAttnError) throw new CliError(`--target: ${e.message}`);
    throw e;
  }
}

function problemFromFlags(flags: Flags, backend: BackendName): AttentionProblem {
  const heads = intFlag(flags, "heads", 8);
  const qLen = intFlag(flags, "q-len", 1024);
  const headDim = intFlag(flags, "head-dim", 64);
  const dtype = (flags.dtype ?? (backend === "cuda" || backend === "triton" ? "bf16" : "f32")) as StorageDType;
  if (!["f32", "f16", "bf16"].includes(dtype)) throw new CliError(`--dtype must be f32, f16 or bf16, got "${String(flags.dtype)}"`);
  const kvHeads = intFlag(flags, "kv-heads", heads);
  if (heads % kvHeads !== 0) throw new CliError(`--heads (${heads}) must be a multiple of --kv-heads (${kvHeads}) for grouped-query attention`);
  return {
    batch: intFlag(flags, "batch", 1),
    qHeads: heads,
    kvHeads,
    qLen,
    kvLen: intFlag(flags, "kv-len", qLen),
    qkHeadDim: headDim,
    vHeadDim: intFlag(flags, "v-head-dim", headDim),
    dtype,
    returnLse: Boolean(flags.lse),
  };
}

function backendFlag(flags: Flags): BackendName {
  const b = String(flags.backend ?? "js");
  if (!(BACKEND_NAMES as readonly string[]).includes(b)) {
    throw new CliError(`--backend must be one of ${BACKEND_NAMES.join(", ")}, got "${b}"`);
  }
  return b as BackendName;
}

const progress = (msg: string) => process.stderr.write(`${msg}\n`);

export interface Variant {
  file: string;
  mask: ModGraph | null;
  score: ModGraph | null;
  maskMod?: MaskMod;
}

/** Extensions of variant files: ES modules only (the resolver hook maps `import … from "flexattn"`, which require() would bypass). */
const NATIVE_EXTENSIONS = [".js", ".mjs"];
const TSX_EXTENSIONS = [".ts", ".mts", ".tsx", ".jsx"];
const COMMONJS_EXTENSIONS = [".cjs", ".cts"];

/** Import a variant file (JavaScript natively, TypeScript through tsx; no build step) and trace its mods. */
export async function loadVariant(fileArg: string | undefined): Promise<Variant> {
  if (!fileArg) throw new CliError("missing the variant file, e.g. flexattn compile my-variant.ts");
  const file = resolve(fileArg);
  if (!existsSync(file) || !statSync(file).isFile()) throw new CliError(`${fileArg}: no such file`);
  const ext = extname(file);
  if (COMMONJS_EXTENSIONS.includes(ext)) {
    throw new CliError(
      `${fileArg}: a variant must be an ES module (import { causal } from "flexattn"; export const maskMod = …), ` +
        `not CommonJS; rename it to ${ext === ".cts" ? ".ts" : ".mjs"} and use import/export`,
    );
  }
  if (![...NATIVE_EXTENSIONS, ...TSX_EXTENSIONS].includes(ext)) {
    throw new CliError(`${fileArg}: a variant file must be .ts or .js (TypeScript or JavaScript), got "${ext || "no extension"}"`);
  }
  let mod: Record<string, unknown>;
  try {
    mod = await importVariant(file, TSX_EXTENSIONS.includes(ext));
  } catch (e) {
    if (e instanceof CliError) throw e;
    const { where, message } = describeLoadError(e, file);
    throw new CliError(`${where ?? fileArg}: failed to load: ${message}`);
  }
  const { maskMod, scoreMod } = mod as { maskMod?: unknown; scoreMod?: unknown };
  if (maskMod === undefined && scoreMod === undefined) {
    const names = Object.keys(mod).filter((k) => k !== "default");
    const hint = names.length ? ` (it exports ${names.join(", ")})` : "";
    throw new CliError(`${fileArg}: exports neither maskMod nor scoreMod${hint}; add e.g. export const maskMod = causal();`);
  }
  const trace = <T>(name: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof FlexAttnError) throw new CliError(`${fileArg}: ${name}: ${e.message}`);
      throw e;
    }
  };
  const mask = maskMod === undefined ? null : trace("maskMod", () => toMaskGraph(maskMod as MaskMod, "the export maskMod"));
  const score = scoreMod === undefined ? null : trace("scoreMod", () => toScoreGraph(scoreMod as ScoreMod, "the export scoreMod"));
  return { file: fileArg, mask, score, maskMod: typeof maskMod === "function" ? (maskMod as MaskMod) : undefined };
}

/**
 * Why a variant did not load, in one line, and where (file:line[:column]) when known. tsx's
 * transform errors put "file:line:col: ERROR: …" after a header line; a JavaScript syntax error
 * carries no location at all (Node prints it from a hidden field), so `node --check` finds it.
 */
export function describeLoadError(e: unknown, file: string): { where?: string; message: string } {
  const lines = (e instanceof Error ? e.message : String(e)).split("\n").map((l) => l.trim()).filter(Boolean);
  if (/^Transform failed with \d+ errors?:?$/.test(lines[0] ?? "") && lines[1]) {
    const m = /^(.+?):(\d+:\d+): (?:ERROR: )?(.*)$/.exec(lines[1]);
    return m ? { where: `${displayPath(m[1])}:${m[2]}`, message: m[3] } : { message: lines[1] };
  }
  if (e instanceof SyntaxError && NATIVE_EXTENSIONS.includes(extname(file))) {
    const check = spawnSync(process.execPath, ["--check", file], { encoding: "utf8" });
    const m = /^(?:file:\/\/)?(\S+?):(\d+)\s*$/m.exec(check.stderr ?? "");
    if (m) return { where: `${displayPath(m[1])}:${m[2]}`, message: `SyntaxError: ${lines[0]}` };
  }
  return { message: lines[0] ?? String(e) };
}

/** A path relative to the working directory when it lies below it. */
function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith("..") ? rel : path;
}

/** tsx's ESM API, an optional peer dependency needed only for TypeScript variants. */
export async function loadTsx(specifier = "tsx/esm/api"): Promise<{ register(o: { tsconfig: false }): () => Promise<void> }> {
  try {
    return (await import(specifier)) as { register(o: { tsconfig: false }): () => Promise<void> };
  } catch (e) {
    if ((e as { code?: string })?.code === "ERR_MODULE_NOT_FOUND") {
      throw new CliError(
        "TypeScript variants need the tsx package, which is not installed: run npm i -D tsx " +
          "(or write the variant in JavaScript, .js or .mjs, which needs nothing more)",
      );
    }
    throw e;
  }
}

/**
 * Import a variant, TypeScript through tsx's register() (from "tsx/esm/api"), with a resolve hook
 * that maps the specifier "flexattn" to this very module graph. Not tsx's tsImport(): its
 * namespaced import loads a second copy of "flexattn" for the variant, whose traced values this
 * process's tracer cannot see. With the hook, `import … from "flexattn"` works from a variant
 * anywhere on disk, and is the instance this CLI traces with.
 */
async function importVariant(file: string, typescript: boolean): Promise<Record<string, unknown>> {
  // No tsconfig paths: they could point "flexattn" or "@flexattn/*" at other copies.
  const unregister = typescript ? (await loadTsx()).register({ tsconfig: false }) : undefined;
  const url = pathToFileURL(file).href;
  installFlexattnResolver();
  variantUrls?.postMessage(url);
  try {
    return (await import(url)) as Record<string, unknown>;
  } finally {
    await unregister?.();
  }
}

let variantUrls: import("node:worker_threads").MessagePort | undefined;
let resolverInstalled = false;
function installFlexattnResolver(): void {
  if (resolverInstalled || typeof registerHooks !== "function") return;
  resolverInstalled = true;
  const self = fileURLToPath(import.meta.url);
  const target = new URL(`./index${extname(self)}`, import.meta.url).href;
  const hooks = [
    "let target, parent; const variants = new Set();",
    "export function initialize(d) { target = d.target; parent = d.parent; d.port.on('message', (u) => variants.add(u)); d.port.unref(); }",
    "export async function resolve(specifier, context, next) {",
    "  if (specifier === 'flexattn') return next(target, { ...context, parentURL: parent });",
    "  if (specifier.startsWith('@flexattn/')) return next(specifier, { ...context, parentURL: parent });",
    "  const r = await next(specifier, context);",
    "  return variants.has(r.url) ? { ...r, format: 'module' } : r;",
    "}",
  ].join("\n");
  const { port1, port2 } = new MessageChannel();
  variantUrls = port1 as unknown as import("node:worker_threads").MessagePort;
  port1.unref?.();
  registerHooks(`data:text/javascript,${encodeURIComponent(hooks)}`, {
    data: { target, parent: import.meta.url, port: port2 },
    transferList: [port2],
  });
}

/** A command's one variant file: another positional argument is a mistake, not something to ignore. */
function oneVariant(command: string, positionals: string[]): void {
  if (positionals.length > 1) throw new CliError(`${command} takes one variant file, got ${positionals.length}: ${positionals.join(" ")}`);
}

async function cmdCompile(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true, strict: true,
    options: {
      ...PROBLEM_OPTIONS, backend: { type: "string" }, target: { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  oneVariant("compile", positionals);
  const backend = backendFlag(values);
  const target = targetFlag(values.target, backend);
  const problem = problemFromFlags(values, backend);
  const blockSize = blockSizeFlag(values);
  progress(`loading ${positionals[0] ?? ""}…`);
  const variant = await loadVariant(positionals[0]);
  const p = problem;
  progress(
    `compiling for ${backend}: ${variant.mask ? "mask" : "no mask"}, ${variant.score ? "score mod" : "identity score"}; ` +
      `B=${p.batch} Hq=${p.qHeads} Hkv=${p.kvHeads} q=${p.qLen} kv=${p.kvLen} d=${p.qkHeadDim}/${p.vHeadDim} ${p.dtype}, blocks ${blockSize.join("×")}`,
  );
  let artifact: KernelArtifact;
  let companions: Readonly<Record<string, string>>;
  try {
    const compiled = compileWithSpec({ maskMod: variant.mask ?? undefined, scoreMod: variant.score ?? undefined }, problem, { backend, blockSize, target });
    artifact = compiled.artifact;
    companions = getBackend(backend).companions?.(compiled.spec, artifact) ?? {};
  } catch (e) {
    if (e instanceof FlexAttnError) throw new CliError(`${variant.file}: ${e.message}`);
    throw e;
  }
  const outDir = resolve(String(values.out ?? "flexattn-out"));
  const written = writeArtifact(outDir, basename(variant.file, extname(variant.file)), artifact, companions);
  for (const f of written) process.stdout.write(`${f}\n`);
  progress(`spec ${artifact.specHash}: ${artifact.source.length} characters of ${backend} source`);
}

async function cmdTune(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true, strict: true,
    options: { ...PROBLEM_OPTIONS, backend: { type: "string" }, max: { type: "string" }, budget: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) return void process.stdout.write(HELP);
  const backend = backendFlag({ backend: values.backend ?? "js" });
  if (backend !== "js" && backend !== "wgsl") {
    throw new CliError(`tune runs kernels in this process: --backend js or wgsl; ${backend} modules tune on the GPU (the generated module's tune(), and tune_backward() for a Triton backward, in Python)`);
  }
  oneVariant("tune", positionals);
  const maxCandidates = intFlag(values, "max", 16);
  const budgetMs = 1000 * intFlag(values, "budget", 60);
  const variant = await loadVariant(positionals[0]);
  const problem = problemFromFlags(values, backend);
  progress(`tuning ${variant.file} on ${backend}: B=${problem.batch} Hq=${problem.qHeads} q=${problem.qLen} kv=${problem.kvLen ?? problem.qLen} d=${problem.qkHeadDim}`);
  try {
    await runTune({
      variant, problem, blockSize: blockSizeFlag(values), backend,
      maxCandidates, budgetMs,
      out: (l) => process.stdout.write(`${l}\n`), err: process.stderr,
    });
  } catch (e) {
    if (e instanceof FlexAttnError) throw new CliError(`${variant.file}: ${e.message}`);
    throw e;
  }
}

async function cmdBlockmask(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args, allowPositionals: true, strict: true,
    options: {
      "q-len": PROBLEM_OPTIONS["q-len"], "kv-len": PROBLEM_OPTIONS["kv-len"], "block-size": PROBLEM_OPTIONS["block-size"],
      batch: PROBLEM_OPTIONS.batch, heads: PROBLEM_OPTIONS.heads, grid: { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) return void process.stdout.write(HELP);
  const qLen = intFlag(values, "q-len", 1024);
  const kvLen = intFlag(values, "kv-len", qLen);
  const blockSize = blockSizeFlag(values);
  let grid: [number, number] | undefined;
  if (values.grid !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(values.grid);
    if (!m || m[1] === "0" || m[2] === "0") throw new CliError(`--grid must be RxC with R, C ≥ 1 (e.g. 32x32), got "${values.grid}"`);
    grid = [Number(m[1]), Number(m[2])];
  }
  oneVariant("blockmask", positionals);
  const variant = await loadVariant(positionals[0]);
  if (!variant.mask) throw new CliError(`${variant.file}: exports no maskMod; a BlockMask needs a mask mod`);
  progress(`building the BlockMask (${qLen} × ${kvLen}, blocks ${blockSize.join("×")})…`);
  const t0 = performance.now();
  let bm: BlockMask;
  try {
    bm = createBlockMask(variant.mask, { B: intFlag(values, "batch", 1), H: intFlag(values, "heads", 1), qLen, kvLen, blockSize });
  } catch (e) {
    if (e instanceof FlexAttnError) throw new CliError(`${variant.file}: maskMod: ${e.message}`);
    throw e;
  }
  const ms = performance.now() - t0;
  const c = bm.blockCounts();
  process.stdout.write(`${bm.toString(grid ? { grid } : undefined)}\n`);
  process.stdout.write(
    `sparsity ${bm.sparsity().toFixed(2)}% (density ${bm.density().toFixed(4)}): ${c.full} full, ${c.partial} partial, ${c.empty} empty of ${c.total} blocks; built in ${ms.toFixed(1)} ms\n`,
  );
}

/** Runs the demo; resolves to its exit code (1 when an output fails the reference check). */
async function cmdDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args, allowPositionals: false, strict: true,
    options: {
      "q-len": { type: "string" }, heads: { type: "string" }, docs: { type: "string" }, backend: { type: "string" },
      out: { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const backend = String(values.backend ?? "auto");
  if (!["auto", "js", "wgsl"].includes(backend)) throw new CliError(`demo --backend must be auto, js or wgsl, got "${backend}"`);
  const n = intFlag(values, "q-len", 2048);
  const docs = intFlag(values, "docs", 8);
  if (docs > n) throw new CliError(`demo --docs ${docs} does not fit in --q-len ${n}: each document needs a token at least`);
  const { ok } = await runDemo({
    n,
    heads: intFlag(values, "heads", 4),
    docs,
    backend: backend as "auto" | "js" | "wgsl",
    outDir: resolve(String(values.out ?? "flexattn-out")),
  });
  return ok ? 0 : 1;
}

async function version(): Promise<string> {
  try {
    const { readFileSync } = await import("node:fs");
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    return pkg.version;
  } catch {
    return "unknown";
  }
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stdout.write(HELP);
        return cmd === undefined ? 1 : 0;
      case "--version":
      case "-v":
        process.stdout.write(`${await version()}\n`);
        return 0;
      case "demo":
        return await cmdDemo(rest);
      case "compile":
        await cmdCompile(rest);
        return 0;
      case "blockmask":
        await cmdBlockmask(rest);
        return 0;
      case "tune":
        await cmdTune(rest);
        return 0;
      default:
        throw new CliError(`unknown command "${cmd}"; run flexattn --help`);
    }
  } catch (e) {
    if (e instanceof CliError || e instanceof FlexAttnError || (e as { code?: string })?.code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`flexattn: error: ${(e as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`flexattn: internal error (please report): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 2;
  }
}

// Run when executed (the bin, `node dist/cli.js`, `tsx src/cli.ts`), not when imported by tests.
function invokedDirectly(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  const argv = process.argv.slice(2);
  // Only demo and tune create a WebGPU device; the other commands need no child process.
  const createsDevice = argv[0] === "demo" || argv[0] === "tune";
  const run = createsDevice && !process.env[DAWN_LOGS_ENV] ? rerunWithoutDawnLogs(argv) : main(argv);
  run.then((code) => process.exit(code));
}
