// Resolves every workspace package to its TypeScript sources, so tests never need a build.
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";

export function workspaceAliases(root) {
  const aliases = {};
  for (const group of ["packages", "apps"]) {
    const dir = join(root, group);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      const pkgFile = join(dir, name, "package.json");
      const entry = join(dir, name, "src", "index.ts");
      if (!existsSync(pkgFile) || !existsSync(entry)) continue;
      aliases[JSON.parse(readFileSync(pkgFile, "utf8")).name] = resolve(entry);
    }
  }
  return aliases;
}
