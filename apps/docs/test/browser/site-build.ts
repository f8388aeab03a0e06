/** The built site for browser tests: reused when newer than every source it is made from, else built. */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export const DOCS = join(import.meta.dirname, "../..");
export const SITE = join(DOCS, "dist");
const REPO = join(DOCS, "../..");

/** Generated folders are outputs of the build, not its inputs. */
const SKIP = new Set(["node_modules", "dist", "generated", "cache", "api", "bench", "test-results", ".turbo"]);

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(e.name)) continue;
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function sourcesMtime(): number {
  const packages = readdirSync(join(REPO, "packages")).map((p) => join(REPO, "packages", p, "src")).filter(existsSync);
  return Math.max(...[join(DOCS, "src"), join(DOCS, "pages"), join(REPO, "apps/bench/results"), ...packages].map(newestMtime));
}

export function ensureSiteBuilt(): void {
  const index = join(SITE, "index.html");
  if (existsSync(index) && statSync(index).mtimeMs > sourcesMtime()) return;
  execFileSync("npm", ["run", "build"], { cwd: DOCS, stdio: "inherit" });
}
