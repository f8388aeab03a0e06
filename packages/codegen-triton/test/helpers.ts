import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buffer, tanh, traceMaskMod, traceScoreMod } from "@flexattn/ir";
import { type KernelConfig, type KernelSpec, makeSpec } from "@flexattn/template";

/** Mods the generation tests share: causal, causal within documents (a captured buffer), softcap. */
export const causal = traceMaskMod((_b, _h, q, kv) => q.ge(kv));
const docs = buffer(new Int32Array(256), { name: "docIds" });
export const docMask = traceMaskMod((_b, _h, q, kv) => q.ge(kv).and(docs.at(q).eq(docs.at(kv))));
export const softcap = traceScoreMod((s, _b, _h, _q, _kv) => tanh(s.div(30)).mul(30));

/** A bf16, head-dim-128, causal spec with a 128×64 / 8-warp config of `numStages` stages; `over` and `config` override. */
export function testSpec(over: Partial<Parameters<typeof makeSpec>[0]> = {}, config: Partial<KernelConfig> = {}, numStages = 4): KernelSpec {
  const base = { blockM: 128, blockN: 64, numWarps: 8, numStages, prescaleQk: false };
  return makeSpec({ mask: causal, score: null, qkHeadDim: 128, vHeadDim: 128, dtype: "bf16", ...over, config: { ...base, ...config } });
}

/** Byte-compile Python sources with `python3 -m py_compile`; returns per-file errors (empty = all compiled). */
export function pyCompile(sources: Record<string, string>): string[] {
  const dir = mkdtempSync(join(tmpdir(), "flexattn-triton-"));
  try {
    const files = Object.entries(sources).map(([name, src]) => {
      const f = join(dir, `${name}.py`);
      writeFileSync(f, src);
      return f;
    });
    const script = [
      "import py_compile, sys",
      "bad = []",
      "for f in sys.argv[1:]:",
      "    try:",
      "        py_compile.compile(f, doraise=True)",
      "    except py_compile.PyCompileError as e:",
      "        bad.append(str(e))",
      "print('\\n'.join(bad))",
    ].join("\n");
    const out = execFileSync("python3", ["-c", script, ...files], { encoding: "utf8" });
    return out.split("\n").filter((l) => l.trim().length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Write Python sources to a temporary folder as `<name>.py` and run `python3 script <paths of args>`;
 * returns the script's non-empty output lines (the checkers here print one line per failure).
 */
export function pyCheck(script: string, sources: Record<string, string>, args: string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), "flexattn-triton-"));
  try {
    for (const [name, src] of Object.entries(sources)) writeFileSync(join(dir, `${name}.py`), src);
    const out = execFileSync("python3", [script, ...args.map((a) => join(dir, `${a}.py`))], { encoding: "utf8" });
    return out.split("\n").filter((l) => l.trim().length > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
