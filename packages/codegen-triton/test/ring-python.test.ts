/**
 * The Python ring (python/flexattn_ring) on CPU: its plan port against @flexattn/blockmask's plans, the LSE merge, and
 * ring_flex_attention over torch.distributed (gloo, 2 and 4 processes) against single-process attention. Needs a
 * python3 with torch (Debian: python3-torch); CI sets FLEXATTN_REQUIRE_TOOLCHAINS=1, which makes a missing one an error.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { writeRingFixtures } from "./ring-fixtures.js";

const here = dirname(fileURLToPath(import.meta.url));
const REQUIRE = process.env.FLEXATTN_REQUIRE_TOOLCHAINS === "1" || (process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false");

/** The first python3 that has torch.distributed with gloo: FLEXATTN_TORCH_PYTHON, python3, then Debian's /usr/bin/python3. */
function torchPython(): string | undefined {
  const probe = "import torch.distributed as d; assert d.is_available() and d.is_gloo_available()";
  const candidates = [process.env.FLEXATTN_TORCH_PYTHON, "python3", "/usr/bin/python3"].filter((p): p is string => !!p);
  return candidates.find((py) => spawnSync(py, ["-c", probe], { stdio: "ignore" }).status === 0);
}

describe("flexattn_ring (Python) on CPU", () => {
  it("matches the TypeScript plans and equals single-process attention over gloo with 2 and 4 ranks", () => {
    const python = torchPython();
    if (!python) {
      const why = "no python3 with torch.distributed (gloo) found (apt-get install python3-torch, or set FLEXATTN_TORCH_PYTHON)";
      if (REQUIRE) throw new Error(`ring-python: ${why}; FLEXATTN_REQUIRE_TOOLCHAINS=1 makes this an error`);
      console.warn(`[ring-python] SKIPPED: ${why} (CI or FLEXATTN_REQUIRE_TOOLCHAINS=1 make this an error)`);
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), "flexattn-ring-"));
    try {
      const fixtures = join(dir, "plans.json");
      writeRingFixtures(fixtures);
      const run = spawnSync(python, [join(here, "..", "python", "tests", "test_ring.py"), fixtures], {
        encoding: "utf8", timeout: 600_000, env: { ...process.env, OMP_NUM_THREADS: "1" },
      });
      const log = `${run.stdout}\n${run.stderr}`;
      expect(run.status, log).toBe(0);
      expect(log).toMatch(/Ran 12 tests/);
      expect(log).toMatch(/\nOK\b/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
