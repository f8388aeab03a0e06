import { fileURLToPath } from "node:url";
import { defineConfig } from "vitepress";
import { workspaceAliases } from "../../../../tooling/vitest-config/index.js";

const repoRoot = fileURLToPath(new URL("../../../..", import.meta.url));

/** VitePress's heading slug, except that "_" stays (see markdown.anchor below). */
function slugKeepingUnderscores(text: string): string {
  return text
    .normalize("NFKD")
    .replace(/[\u0300-\u036F]/g, "")
    .replace(/[\u0000-\u001f]/g, "")
    .replace(/[\s~`!@#$%^&*()\-+=[\]{}|\\;:"'“”‘’<>,.?/]+/g, "-")
    .replace(/-{2,}/g, "-")
    .replace(/^-+|-+$/g, "")
    .replace(/^(\d)/, "_$1")
    .toLowerCase();
}

export default defineConfig({
  title: "flexattn",
  description: "FlexAttention for TypeScript: attention variants as two small functions, kernels for JS, WebGPU, CUDA and Triton",
  outDir: "../dist",
  // Fragments other pages include, not pages of their own.
  srcExclude: ["generated/**"],
  // No favicon of our own: an empty one, so a visit does not start with a 404.
  head: [["link", { rel: "icon", href: "data:," }]],
  // TypeDoc's API pages link to CONSTANT_CASE headings with their underscores: keep them in anchors
  // (VitePress's default slug turns "_" into "-", and those links would land at the top of the page).
  markdown: { anchor: { slugify: slugKeepingUnderscores } },
  cleanUrls: false,
  lastUpdated: false,
  themeConfig: {
    nav: [
      { text: "Guide", link: "/getting-started" },
      { text: "Playground", link: "/playground" },
      { text: "API", link: "/api/" },
      { text: "Benchmarks", link: "/bench/" },
    ],
    sidebar: [
      {
        text: "Guide",
        items: [
          { text: "Getting started", link: "/getting-started" },
          { text: "The mod DSL", link: "/mod-dsl" },
          { text: "Mask library", link: "/masks" },
          { text: "GQA, offsets and LSE", link: "/gqa-offsets-lse" },
          { text: "Training in TypeScript", link: "/training" },
          { text: "Kernel artifact and ABI", link: "/kernel-abi" },
          { text: "Triton and CUDA from PyTorch", link: "/pytorch" },
          { text: "Write a backend", link: "/write-a-backend" },
        ],
      },
      { text: "Playground", link: "/playground" },
      { text: "Benchmarks", link: "/bench/" },
      { text: "API reference", link: "/api/" },
    ],
  },
  vite: {
    resolve: {
      // The site bundles the packages from their TypeScript sources; Dawn (the Node-only
      // `webgpu` package) is never loaded in a browser, where navigator.gpu serves WebGPU.
      alias: {
        ...workspaceAliases(repoRoot),
        webgpu: fileURLToPath(new URL("./theme/node-only-stub.ts", import.meta.url)),
      },
    },
    build: { target: "es2022", chunkSizeWarningLimit: 2000 },
  },
});
