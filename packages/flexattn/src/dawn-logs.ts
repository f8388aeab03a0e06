/**
 * Dawn (the `webgpu` package) prints its native warnings straight to file descriptor 2, e.g.
 * "Warning: Couldn't load Vulkan: …" followed by a C++ source location. Node cannot intercept a
 * native library's writes, so the CLI runs a command that may create a device in a child process
 * and drops those blocks from the child's stderr, passing every other line through.
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { createInterface } from "node:readline";

/** Set in the child so that it does not spawn again; set it yourself to see Dawn's messages. */
export const DAWN_LOGS_ENV = "FLEXATTN_DAWN_LOGS";

/** A line filter for Dawn's stderr blocks: "Warning: …", its "    at …" frames, and the blank line after them. */
export function dawnLogFilter(): (line: string) => boolean {
  let inBlock = false;
  return (line) => {
    if (/^Warning: /.test(line)) {
      inBlock = true;
      return false;
    }
    if (inBlock && (/^\s+at /.test(line) || line === "")) {
      if (line === "") inBlock = false;
      return false;
    }
    inBlock = false;
    return true;
  };
}

/** Run this CLI again as a child, its stdout passed through and its stderr without Dawn's warnings; resolves to its exit code. */
export function rerunWithoutDawnLogs(argv: readonly string[]): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], {
    stdio: ["inherit", "inherit", "pipe"],
    env: { ...process.env, [DAWN_LOGS_ENV]: "hidden" },
  });
  const keep = dawnLogFilter();
  createInterface({ input: child.stderr }).on("line", (line) => {
    if (keep(line)) process.stderr.write(`${line}\n`);
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)));
  });
}
