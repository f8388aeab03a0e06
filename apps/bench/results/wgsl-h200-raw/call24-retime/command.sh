WGSL_S=350 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --matrix-only --repeat-sweep --protocol-defaults --skip-conformance
