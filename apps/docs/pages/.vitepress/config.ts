import { fileURLToPath } from "node:url";
import { defineConfig } from "vitepress";
import { workspaceAliases } from "../../../../tooling/vitest-config/index.js";

const repoRoot = fileURLToPath(new URL("../../../..", import.meta.url));

export default defineConfig({
  title: "flexattn",
  description: "FlexAttention for TypeScript: attention variants as two small functions, kernels for JS, WebGPU, CUDA and Triton",
  outDir: "../dist",
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
