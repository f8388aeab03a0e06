# Device command (repo root, .node and .gl carried; .node/wgsl-bench.mjs bundled from apps/bench/src/wgsl-bench.ts as in apps/bench/device/wgsl/README.md).
# Ran the library of commit f8c5cdc (the bundle was built from the working tree before a lint-only parameter rename in that commit).
WGSL_S=45 ANCHOR_BUDGET_S=105 TORCH_S=125 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --skip-conformance --skip-sweep --protocol-defaults
