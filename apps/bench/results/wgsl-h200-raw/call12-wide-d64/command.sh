# Device command (repo root, .node and .gl carried; .node/wgsl-bench.mjs bundled from apps/bench/src/wgsl-bench.ts as in apps/bench/device/wgsl/README.md):
export __GL_SHADER_DISK_CACHE=0 SKIP_TORCH=1 WGSL_S=470; bash apps/bench/device/wgsl/run.sh --skip-conformance --wide-d64
