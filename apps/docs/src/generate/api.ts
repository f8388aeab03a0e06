/** The API reference: TypeDoc over the packages' TypeScript sources, as Markdown pages for the site. */
import { join } from "node:path";
import { Application } from "typedoc";
import { DOCS_ROOT, PAGES } from "./output.js";

/** Documented packages; ir, masks and blockmask appear through flexattn, which re-exports them. */
export const API_PACKAGES = [
  "flexattn", "template", "autotune", "webgpu", "codegen-js", "codegen-wgsl", "codegen-cuda", "codegen-triton",
] as const;

export const API_OUT = join(PAGES, "api");

export async function generateApi(): Promise<void> {
  const app = await Application.bootstrapWithPlugins({
    entryPoints: API_PACKAGES.map((p) => join(DOCS_ROOT, "../../packages", p, "src/index.ts")),
    tsconfig: join(DOCS_ROOT, "tsconfig.api.json"),
    plugin: ["typedoc-plugin-markdown"],
    out: API_OUT,
    entryFileName: "index.md",
    // One page per package keeps the site build fast (hundreds of pages otherwise).
    outputFileStrategy: "modules",
    readme: "none",
    name: "flexattn API",
    // The packages' own typecheck and build are where type errors are reported.
    skipErrorChecking: true,
    excludePrivate: true,
    excludeInternal: true,
    hidePageHeader: true,
    // Doc comments may hold text like <T> that the site's Vue compiler would read as tags.
    sanitizeComments: true,
    logLevel: "Error",
  } as Parameters<typeof Application.bootstrapWithPlugins>[0]);
  const project = await app.convert();
  if (!project) throw new Error("TypeDoc could not convert the packages' sources");
  // Entry points are packages/<name>/src/index.ts: name each module by its package.
  for (const module of project.children ?? []) module.name = module.name.replace(/\/src$/, "");
  await app.generateOutputs(project);
}
