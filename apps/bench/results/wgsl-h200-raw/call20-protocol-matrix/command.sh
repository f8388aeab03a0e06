# Device command (repo root, .node and .gl carried; bundles built here as in apps/bench/device/wgsl/README.md;
# order-probe.mjs and attn-mma.mjs copied into .node/probe/, wgsl-bench.mjs and bisect.mjs bundled from apps/bench/src).
WGSL_S=300 ANCHOR_BUDGET_S=165 TORCH_S=195 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --matrix-only --unsafe | grep -v "^PASS"
# Ran the tree of commit f8c5cdc (the matrix kernel's workgroup scalar moved before its arrays), before two
# later edits of that commit: wgsl-bench --matrix-only then swept [plain default, 128x16 T128 mma,
# 128x16 T256 mma] (now [plain default, 128x16 T256 mma]) and wgslDefaultConfig still returned the plain config.
