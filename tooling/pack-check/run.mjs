#!/usr/bin/env node
/**
 * The packages as npm users get them. Packs every published package (its prepack builds it),
 * checks each tarball's files, installs the tarballs in a fresh directory with npm, then:
 * imports each package alone in Node ESM, runs the CLI without tsx, type-checks a consumer with
 * strict tsc (no skipLibCheck), bundles `flexattn` and `@flexattn/webgpu` for the browser with
 * esbuild and Vite, and runs `pnpm publish -r --dry-run`. Exits 1 on the first failure.
 *
 *   node tooling/pack-check/run.mjs [--keep]     (--keep: leave the temporary directory)
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const ROOT = resolve(import.meta.dirname, "../..");
const PNPM = ["npx", "-y", "pnpm@10.34.8"];
const keep = process.argv.includes("--keep");
const work = mkdtempSync(join(tmpdir(), "flexattn-pack-check-"));
const started = performance.now();

function step(name) {
  process.stdout.write(`pack-check: ${name} (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
}

function fail(message) {
  process.stderr.write(`pack-check: FAILED: ${message}\n(temporary directory kept: ${work})\n`);
  process.exit(1);
}

/** Run a command; its output is shown only when it fails. */
function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.status !== 0 && !opts.allowFailure) fail(`${cmd} ${args.join(" ")} (in ${opts.cwd ?? process.cwd()}) exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The same, without blocking: for commands that can run side by side. */
function runAsync(cmd, args, opts = {}) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, { ...opts, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => {
      if (code !== 0) fail(`${cmd} ${args.join(" ")} (in ${opts.cwd ?? process.cwd()}) exited ${code}\n${output}`);
      resolvePromise();
    });
  });
}

/** Run tasks, as many at once as there are CPUs. */
async function inParallel(tasks) {
  const queue = [...tasks];
  const worker = async () => {
    while (queue.length) await queue.shift()();
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(availableParallelism(), queue.length)) }, worker));
}

const publicPackages = readdirSync(join(ROOT, "packages"))
  .map((dir) => ({ dir: join(ROOT, "packages", dir), json: JSON.parse(readFileSync(join(ROOT, "packages", dir, "package.json"), "utf8")) }))
  .filter((p) => !p.json.private);

// 0. Every published package carries the same metadata, one version, one changesets group.
step("checking package metadata");
const rootRepo = "git+https://github.com/flexattn/flexattn.git";
for (const { dir, json: p } of publicPackages) {
  const where = `${p.name} (${dir}/package.json)`;
  const expect = (ok, what) => ok || fail(`${where}: ${what}`);
  expect(p.license === "MIT", "license must be MIT");
  expect(p.description && p.keywords?.length && p.homepage && p.bugs?.url, "needs description, keywords, homepage and bugs");
  expect(p.repository?.url === rootRepo && p.repository?.directory === dir.slice(ROOT.length + 1), `repository must be ${rootRepo} with directory`);
  expect(p.engines?.node === ">=20", 'engines.node must be ">=20"');
  expect(p.sideEffects === false, "sideEffects must be false");
  expect(!p.name.startsWith("@") || p.publishConfig?.access === "public", "a scoped package needs publishConfig.access public");
  expect(p.exports?.["."]?.types && p.exports?.["."]?.import, "exports['.'] needs types and import");
  expect(["dist", "README.md", "LICENSE"].every((f) => p.files?.includes(f)), "files must list dist, README.md and LICENSE");
  expect(p.scripts?.prepack, "needs a prepack script that builds");
  expect(p.version === publicPackages[0].json.version, `version ${p.version} differs from ${publicPackages[0].json.name}'s ${publicPackages[0].json.version}`);
  expect(readFileSync(join(dir, "LICENSE"), "utf8") === readFileSync(join(ROOT, "LICENSE"), "utf8"), "LICENSE must be a copy of the root LICENSE");
}
const fixed = JSON.parse(readFileSync(join(ROOT, ".changeset", "config.json"), "utf8")).fixed ?? [];
const group = new Set(fixed.find((g) => g.includes("flexattn")) ?? []);
const missing = publicPackages.map((p) => p.json.name).filter((n) => !group.has(n));
if (missing.length) fail(`.changeset/config.json: the fixed group lacks ${missing.join(", ")}`);

// 1. Pack (prepack builds each package from its sources).
step(`packing ${publicPackages.length} packages`);
const tarballs = join(work, "tarballs");
mkdirSync(tarballs);
await inParallel(publicPackages.map((p) => () => runAsync(PNPM[0], [...PNPM.slice(1), "pack", "--pack-destination", tarballs], { cwd: p.dir })));
const files = readdirSync(tarballs).filter((f) => f.endsWith(".tgz")).map((f) => join(tarballs, f));
if (files.length !== publicPackages.length) fail(`expected ${publicPackages.length} tarballs, got ${files.length}`);

// 2. Each tarball holds its build, types, README and LICENSE, and no workspace: ranges.
step("checking tarball contents");
for (const file of files) {
  const listing = execFileSync("tar", ["-tzf", file], { encoding: "utf8" }).split("\n");
  for (const needed of ["package/LICENSE", "package/README.md", "package/package.json", "package/dist/index.js", "package/dist/index.d.ts"]) {
    if (!listing.includes(needed)) fail(`${file} lacks ${needed}`);
  }
  const stray = listing.filter((f) => f && !/^package\/(dist\/|LICENSE$|README\.md$|package\.json$)/.test(f));
  if (stray.length) fail(`${file} ships files outside dist/: ${stray.join(", ")}`);
  const manifest = execFileSync("tar", ["-xzOf", file, "package/package.json"], { encoding: "utf8" });
  if (manifest.includes("workspace:")) fail(`${file}: package.json still has workspace: ranges`);
}

// 3. A fresh project installs the tarballs with npm (no tsx, no webgpu: both optional peers).
step("installing the tarballs with npm in a fresh directory");
const app = join(work, "app");
mkdirSync(app);
writeFileSync(join(app, "package.json"), JSON.stringify({ name: "pack-check-app", private: true, type: "module" }, null, 2));
run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error", ...files], { cwd: app });
for (const peer of ["tsx", "webgpu"]) {
  const probe = run("node", ["--input-type=module", "-e", `try { await import("${peer}"); console.log("present"); } catch { console.log("absent"); }`], { cwd: app });
  if (probe.stdout.trim() !== "absent") fail(`the optional peer ${peer} was installed with the packages`);
}

// 4. Each package alone in Node ESM.
step("importing each package alone in Node ESM");
for (const p of publicPackages) {
  const r = run("node", ["--input-type=module", "-e", `const m = await import("${p.json.name}"); console.log(Object.keys(m).length);`], { cwd: app });
  if (!(Number(r.stdout.trim()) > 0)) fail(`${p.json.name} exports nothing`);
}
// The library runs without Dawn and says what to install for WGSL.
const noDawn = run("node", ["--input-type=module", "-e", [
  `import { causal, createBlockMask, flexAttention, randomTensor, lastFlexAttentionRun } from "flexattn";`,
  `import { requestFlexDevice } from "@flexattn/webgpu";`,
  `const t = (s) => randomTensor([1, 1, 64, 16], { seed: s });`,
  `const out = await flexAttention(t(1), t(2), t(3), { blockMask: createBlockMask(causal(), { qLen: 64, kvLen: 64, blockSize: 32 }) });`,
  `if (out.data.some((x) => !Number.isFinite(x))) throw new Error("non-finite output");`,
  `console.log(lastFlexAttentionRun().backend);`,
  `try { await requestFlexDevice(); console.log("device?"); } catch (e) { console.log(e.message); }`,
].join("\n")], { cwd: app });
if (!/^js\n/.test(noDawn.stdout) || !/install the `webgpu` package to run WGSL in Node/.test(noDawn.stdout)) {
  fail(`without the webgpu package, flexAttention should run on js and requestFlexDevice say what to install; got:\n${noDawn.stdout}${noDawn.stderr}`);
}

// 5. The CLI: JavaScript variants need nothing more; TypeScript ones ask for tsx.
step("running the CLI without tsx");
writeFileSync(join(app, "variant.mjs"), `import { causal } from "flexattn";\nexport const maskMod = causal();\n`);
writeFileSync(join(app, "variant.ts"), `import { causal, type MaskMod } from "flexattn";\nexport const maskMod: MaskMod = causal();\n`);
const bin = join(app, "node_modules", ".bin", "flexattn");
run(bin, ["compile", "variant.mjs", "--backend", "wgsl", "--out", "out"], { cwd: app });
if (!readdirSync(join(app, "out")).includes("variant.wgsl")) fail("flexattn compile variant.mjs wrote no variant.wgsl");
const ts = run(bin, ["compile", "variant.ts"], { cwd: app, allowFailure: true });
if (ts.status !== 1 || !/run npm i -D tsx/.test(ts.stderr)) fail(`a .ts variant without tsx should exit 1 asking for tsx; got ${ts.status}: ${ts.stderr}`);

// 6. Strict tsc on a consumer, without skipLibCheck, under both module resolutions users pick.
step("type-checking a consumer with strict tsc");
writeFileSync(join(app, "consumer.ts"), [
  `import { type MaskMod, type ScoreMod, causal, compile, createBlockMask, flexAttention, tanh, tensor } from "flexattn";`,
  `import { type FlexDevice, requestFlexDevice, runWgsl, wrapDevice } from "@flexattn/webgpu";`,
  ...publicPackages.map((p, i) => `import * as pkg${i} from "${p.json.name}";`),
  `export const all = [${publicPackages.map((_, i) => `pkg${i}`).join(", ")}];`,
  `const maskMod: MaskMod = causal();`,
  `const scoreMod: ScoreMod = (s) => tanh(s.div(30)).mul(30);`,
  `const q = tensor(new Float32Array(64 * 16), [1, 1, 64, 16]);`,
  `export const out = flexAttention(q, q, q, { scoreMod, blockMask: createBlockMask(maskMod, { qLen: 64, kvLen: 64 }) });`,
  `export const artifact: string = compile({ maskMod, scoreMod }, { batch: 1, qHeads: 1, kvHeads: 1, qLen: 64, kvLen: 64, qkHeadDim: 16, vHeadDim: 16, dtype: "f32" }, { backend: "wgsl" }).source;`,
  `export async function onDevice(device: GPUDevice, adapter: GPUAdapter): Promise<FlexDevice> { return wrapDevice(device, adapter); }`,
  `export const run: typeof runWgsl = runWgsl;`,
  `export const request: typeof requestFlexDevice = requestFlexDevice;`,
].join("\n"));
const tsc = join(createRequire(join(ROOT, "package.json")).resolve("typescript/package.json"), "..", "bin", "tsc");
for (const [module, moduleResolution] of [["NodeNext", "NodeNext"], ["ESNext", "Bundler"]]) {
  writeFileSync(join(app, "tsconfig.json"), JSON.stringify({
    compilerOptions: { strict: true, noEmit: true, target: "ES2022", module, moduleResolution, lib: ["ES2022", "DOM"], types: [], skipLibCheck: false },
    files: ["consumer.ts"],
  }));
  run("node", [tsc, "-p", "tsconfig.json"], { cwd: app });
}

// 7. Browser bundles: esbuild for both browser entry points, Vite for flexattn (tree-shaken).
step("bundling for the browser with esbuild and Vite");
const fromRoot = createRequire(join(ROOT, "package.json"));
const esbuild = createRequire(fromRoot.resolve("tsup/package.json"))("esbuild");
for (const name of ["flexattn", "@flexattn/webgpu"]) {
  try {
    await esbuild.build({
      stdin: { contents: `export * from "${name}";`, resolveDir: app, loader: "js" },
      bundle: true, platform: "browser", format: "esm", write: false, logLevel: "silent",
    });
  } catch (e) {
    fail(`esbuild cannot bundle ${name} for the browser: ${e.message}`);
  }
}
const vite = await import(pathToFileURL(createRequire(fromRoot.resolve("vitest/package.json")).resolve("vite")).href);
writeFileSync(join(app, "index.html"), `<!doctype html><script type="module" src="./main.js"></script>\n`);
writeFileSync(join(app, "main.js"), [
  `import { causal, createBlockMask } from "flexattn";`,
  `document.body.textContent = createBlockMask(causal(), { qLen: 256, kvLen: 256, blockSize: 64 }).toString();`,
].join("\n"));
await vite.build({ root: app, logLevel: "error", build: { outDir: join(app, "dist"), minify: false, emptyOutDir: true } });
const assets = readdirSync(join(app, "dist", "assets")).filter((f) => f.endsWith(".js"));
const bundle = assets.map((f) => readFileSync(join(app, "dist", "assets", f), "utf8")).join("\n");
if (/from\s*["']node:|require\(["']node:/.test(bundle)) fail("the Vite bundle of flexattn imports node: modules");
// sideEffects: false lets a bundler drop the backends this page never uses.
if (/__global__|triton\.jit/.test(bundle)) fail("the Vite bundle of causal + createBlockMask still contains the CUDA / Triton generators");

// 8. pnpm publish -r --dry-run (already built and packed above: no second build).
step("pnpm publish -r --dry-run");
run(PNPM[0], [...PNPM.slice(1), "publish", "-r", "--dry-run", "--no-git-checks", "--ignore-scripts"], { cwd: ROOT });

step(`ok: ${files.length} packages packed, installed, imported, type-checked, bundled`);
if (!keep) rmSync(work, { recursive: true, force: true });
else process.stdout.write(`kept ${work}\n`);
