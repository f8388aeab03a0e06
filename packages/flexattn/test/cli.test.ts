/** End-to-end tests of the flexattn CLI: node runs src/cli.ts through tsx, as a user's shell would run the bin. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { artifactFromJSON } from "@flexattn/template";
import { loadTsx, main } from "../src/cli.js";
import { dawnLogFilter } from "../src/dawn-logs.js";
import { setWebgpuImporter } from "../src/registry.js";

const pkg = resolve(import.meta.dirname, "..");
const fixture = (name: string) => join("test", "fixtures", name);

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: pkg, encoding: "utf8", timeout: 110_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const tmp = () => mkdtempSync(join(tmpdir(), "flexattn-cli-"));

/** A user error: exit 1, one "flexattn: error:" line, no stack trace. */
function expectUserError(r: ReturnType<typeof cli>, message: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/flexattn: error: /);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe("flexattn CLI", () => {
  it("--help prints usage and exits 0; no command prints it and exits 1", () => {
    const r = cli("--help");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/flexattn compile <variant\.ts\|\.js> \[--backend js\|wgsl\|cuda\|triton\]/);
    expect(r.stdout).toMatch(/--q-len N/);
    expect(cli().code).toBe(1);
    expect(cli("compile", "--help").code).toBe(0);
  });

  it("compile writes the kernel source and artifact JSON for every backend", () => {
    const out = tmp();
    const exts = { js: ".js", wgsl: ".wgsl", cuda: ".cu", triton: ".py" } as const;
    for (const [backend, ext] of Object.entries(exts)) {
      const r = cli("compile", fixture("softcap-docs.ts"), "--backend", backend, "--out", out);
      expect(r.stderr).not.toMatch(/error/);
      expect(r.code).toBe(0);
      const src = join(out, `softcap-docs${ext}`);
      const json = join(out, `softcap-docs.${backend}.json`);
      // A CUDA kernel comes with its PyTorch module.
      const module = backend === "cuda" ? [join(out, "softcap-docs_cuda.py")] : [];
      expect(r.stdout.trim().split("\n")).toEqual([src, json, ...module]);
      const artifact = artifactFromJSON(readFileSync(json, "utf8"));
      expect(artifact.backend).toBe(backend);
      expect(readFileSync(src, "utf8")).toBe(artifact.source);
      expect(artifact.spec.maskKey).not.toBeNull();
      expect(artifact.spec.scoreKey).not.toBeNull();
      // Captured document ids are a kernel argument, never baked into the source.
      expect(artifact.abi.map((a) => a.name)).toContain("mask_docs");
      expect(r.stderr).toMatch(/compiling for /);
    }
    expect(readdirSync(out).sort()).toHaveLength(9);
  });

  it("compile --target picks the CUDA architecture; its module carries the wgmma kernels and an sm_80 one to fall back on", () => {
    const out = tmp();
    const kernels = (module: string) => [...readFileSync(module, "utf8").matchAll(/^ {4}"([^"]+)": dict\(\n\s+spec_hash=/gm)].map((m) => m[1]);
    const r = cli("compile", fixture("softcap-docs.ts"), "--backend", "cuda", "--target", "sm_90a", "--head-dim", "128", "--out", out);
    expect(r.stderr).not.toMatch(/error/);
    expect(artifactFromJSON(readFileSync(join(out, "softcap-docs.cuda.json"), "utf8")).config.options).toMatchObject({ kernel: "wgmma" });
    const hopper = kernels(join(out, "softcap-docs_cuda.py"));
    expect(hopper).toHaveLength(4);
    expect(hopper[0]).toMatch(/wgmma/);
    expect(hopper.at(-1)).toMatch(/mma$/);
    expect(hopper.at(-1)).not.toMatch(/wgmma/);
    // No target: sm_80, every kernel runs from A100 on.
    expect(cli("compile", fixture("softcap-docs.ts"), "--backend", "cuda", "--head-dim", "128", "--out", out).code).toBe(0);
    const portable = kernels(join(out, "softcap-docs_cuda.py"));
    expect(portable.length).toBeGreaterThan(1);
    for (const k of portable) expect(k).not.toMatch(/wgmma/);
    expectUserError(cli("compile", fixture("softcap-docs.ts"), "--backend", "cuda", "--target", "sm_75", "--out", out), /"sm_80".*"sm_90a".*got "sm_75"/);
    expectUserError(cli("compile", fixture("softcap-docs.ts"), "--backend", "triton", "--target", "sm_90a", "--out", out), /--target applies to --backend cuda/);
  });

  it("compile honours the problem flags; defaults work with none; .js variants load too", () => {
    const out = tmp();
    const r = cli(
      "compile", fixture("sliding-window.js"), "--backend", "triton", "--out", out, "--dtype", "f16", "--head-dim", "128",
      "--v-head-dim", "64", "--heads", "16", "--kv-heads", "4", "--block-size", "64x128", "--lse", "--q-len", "4096",
    );
    expect(r.code).toBe(0);
    const a = artifactFromJSON(readFileSync(join(out, "sliding-window.triton.json"), "utf8"));
    expect(a.spec).toMatchObject({ qkHeadDim: 128, vHeadDim: 64, dtype: "f16", returnLse: true, sparseBlock: [64, 128], scoreKey: null });
    const d = cli("compile", fixture("sliding-window.js"), "--out", out);
    expect(d.code).toBe(0);
    expect(artifactFromJSON(readFileSync(join(out, "sliding-window.js.json"), "utf8")).spec).toMatchObject({ qkHeadDim: 64, dtype: "f32", sparseBlock: [128, 128] });
  });

  it("blockmask prints the picture and the sparsity", () => {
    const r = cli("blockmask", fixture("sliding-window.js"), "--q-len", "2048", "--block-size", "128");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/BlockMask\(B=1, H=1, qLen=2048, kvLen=2048, blockSize=\[128, 128\]/);
    expect(r.stdout).toMatch(/[█▒░]{16}/);
    expect(r.stdout).toMatch(/sparsity \d+\.\d\d% \(density 0\.\d+\): \d+ full, \d+ partial, \d+ empty of 256 blocks/);
  });

  it("user errors name the file, the mod and the problem, exit 1, and print no stack", () => {
    expectUserError(cli("compile", fixture("missing.ts")), /test\/fixtures\/missing\.ts: no such file/);
    expectUserError(cli("compile", fixture("no-mods.ts")), /no-mods\.ts: exports neither maskMod nor scoreMod \(it exports helper, windowSize\)/);
    expectUserError(cli("compile", fixture("js-operator.ts")), /js-operator\.ts: maskMod: .*q\.ge\(kv\) for q >= kv/);
    expectUserError(cli("compile", fixture("wrong-arity.ts")), /wrong-arity\.ts: scoreMod: score mod .* takes 1 parameter, but a score mod takes 5/);
    expectUserError(cli("compile", fixture("syntax-error.js")), /test\/fixtures\/syntax-error\.js:1: failed to load: SyntaxError: missing \) after argument list/);
    // Written at test time: a fixture with a syntax error would break the package's typecheck.
    const badTs = join(tmp(), "bad-syntax.ts");
    writeFileSync(badTs, `// line 1\nimport { causal } from "flexattn";\n\nexport const maskMod = causal(;\n`);
    expectUserError(cli("compile", badTs), /bad-syntax\.ts:4:\d+: failed to load: /);
    expectUserError(cli("compile", fixture("commonjs.cjs")), /commonjs\.cjs: a variant must be an ES module .* not CommonJS; rename it to \.mjs/);
    expectUserError(cli("compile", fixture("commonjs.cts")), /commonjs\.cts: a variant must be an ES module .* not CommonJS; rename it to \.ts/);
    expectUserError(cli("compile", fixture("not-a-function.ts")), /not-a-function\.ts: maskMod: the export maskMod must be a mask mod .* got number/);
    expectUserError(cli("compile", fixture("sliding-window.js"), "--backend", "metal"), /--backend must be one of js, wgsl, cuda, triton, got "metal"/);
    expectUserError(cli("compile", fixture("sliding-window.js"), "--q-len", "abc"), /--q-len must be a positive integer, got "abc"/);
    expectUserError(cli("compile", fixture("sliding-window.js"), "--heads", "6", "--kv-heads", "4"), /--heads \(6\) must be a multiple of --kv-heads \(4\)/);
    expectUserError(cli("compile", fixture("sliding-window.js"), "--frobnicate"), /Unknown option '--frobnicate'/);
    expectUserError(cli("compile"), /missing the variant file/);
    expectUserError(cli("blockmask", fixture("wrong-arity.ts")), /wrong-arity\.ts: scoreMod: /);
    expectUserError(cli("frobnicate"), /unknown command "frobnicate"/);
    expectUserError(cli("blockmask", fixture("sliding-window.js"), "extra.js"), /blockmask takes one variant file, got 2/);
    expectUserError(cli("tune", fixture("sliding-window.js"), "extra.js"), /tune takes one variant file, got 2/);
    expectUserError(cli("blockmask", fixture("sliding-window.js"), "--grid", "0x4"), /--grid must be RxC with R, C ≥ 1/);
    expectUserError(cli("blockmask", fixture("sliding-window.js"), "--lse"), /Unknown option '--lse'/);
    expectUserError(cli("demo", "--docs", "300", "--q-len", "256"), /demo --docs 300 does not fit in --q-len 256/);
    expectUserError(cli("compile", fixture("sliding-window.js"), "--q-len", "99999999999999999999"), /--q-len must be below 2\^31/);
  });

  it("blockmask reports a captured buffer shorter than the sequence (its extra positions read 0)", () => {
    const r = cli("blockmask", fixture("softcap-docs.ts"), "--q-len", "4096");
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/buffer "docs" \(1024 entries on axis 0\) may be indexed with values in \[0, 4095\].*read 0/);
  });

  it("demo runs, checks against the reference and writes every backend's kernel", () => {
    const out = tmp();
    const r = cli("demo", "--q-len", "512", "--heads", "2", "--docs", "3", "--backend", "js", "--out", out);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/sparsity \d+\.\d%/);
    expect(r.stdout).toMatch(/js +JavaScript .* ms .* ms/);
    expect(r.stdout).toMatch(/js: max relative error vs the float64 reference on \d+ rows = .* ✓/);
    expect(r.stderr).toMatch(/running flexAttention/);
    for (const f of [".js", ".wgsl", ".py", ".cu", "_cuda.py"]) expect(existsSync(join(out, `document_causal_softcap${f}`))).toBe(true);
    for (const b of ["js", "wgsl", "triton", "cuda"]) expect(existsSync(join(out, `document_causal_softcap.${b}.json`))).toBe(true);
  });

  it("an output directory that cannot be written is a user error, not an internal one", () => {
    const file = join(tmp(), "a-file");
    writeFileSync(file, "");
    expectUserError(cli("compile", fixture("sliding-window.js"), "--out", file), /cannot write kernels to .*a-file: it is a file, not a directory; choose another output directory \(--out\)/);
    expectUserError(cli("compile", fixture("sliding-window.js"), "--out", join(file, "kernels")), /cannot write kernels to .*a-file: it is a file/);
    expectUserError(cli("demo", "--q-len", "128", "--backend", "js", "--out", file), /cannot write kernels to .*a-file: it is a file/);
    // sysfs refuses new directories even to root.
    if (existsSync("/sys/kernel")) expectUserError(cli("compile", fixture("sliding-window.js"), "--out", "/sys/flexattn-out"), /cannot create the output directory \/sys\/flexattn-out: /);
  });

  it("tsx is needed only for TypeScript variants; without it the message says what to install", async () => {
    await expect(loadTsx("flexattn-no-such-tsx/esm/api")).rejects.toThrow(/TypeScript variants need the tsx package, which is not installed: run npm i -D tsx \(or write the variant in JavaScript, \.js or \.mjs/);
    expect(typeof (await loadTsx()).register).toBe("function");
  });

  it("the demo's output carries none of Dawn's native warnings", () => {
    const r = cli("demo", "--q-len", "128", "--heads", "1", "--docs", "2", "--out", tmp());
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/running flexAttention/);
    expect(r.stderr).not.toMatch(/Warning:|Couldn't load|\.cpp:\d+/);
    const keep = dawnLogFilter();
    const lines = [
      "running flexAttention (backend \"auto\")…",
      "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory",
      "    at operator() (/dawn/src/dawn/native/vulkan/BackendVk.cpp:368)",
      "",
      "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 90 to 16 to fit dynamic offset allocation limit.",
      "checking against the float64 reference…",
      "",
      "done",
    ];
    expect(lines.filter(keep)).toEqual(["running flexAttention (backend \"auto\")…", "checking against the float64 reference…", "", "done"]);
  });
});

describe("flexattn demo exit code", () => {
  afterEach(() => {
    setWebgpuImporter(() => import("@flexattn/webgpu"));
    vi.restoreAllMocks();
  });

  it("is 1 when an output fails the reference check", async () => {
    // A WebGPU module whose device writes a wrong answer (every output 0.5).
    const limits = { maxComputeWorkgroupStorageSize: 16384, maxComputeInvocationsPerWorkgroup: 256 };
    const unused = () => {
      throw new Error("not reached in this test");
    };
    setWebgpuImporter(async () => ({
      defaultFlexDevice: async () => ({ description: "a broken device", limits }),
      wgslTarget: () => ({ signature: "a broken device", limits }),
      runWgsl: async (inv: { out: Float32Array }) => void inv.out.fill(0.5),
      prepareWgsl: unused,
      timeWgsl: unused,
    }));
    const stdout: string[] = [];
    vi.spyOn(process.stdout, "write").mockImplementation((s) => {
      stdout.push(String(s));
      return true;
    });
    vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    const code = await main(["demo", "--q-len", "256", "--heads", "1", "--docs", "2", "--backend", "wgsl", "--out", tmp()]);
    vi.restoreAllMocks();
    const text = stdout.join("");
    expect(text).toMatch(/wgsl: max relative error .* ✗/);
    expect(text).toMatch(/js: max relative error .* ✓/);
    expect(text).toMatch(/REFERENCE CHECK FAILED/);
    expect(code).toBe(1);
  });
});
