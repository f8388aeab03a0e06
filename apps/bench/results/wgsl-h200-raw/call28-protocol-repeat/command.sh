bash .node/call28.sh   (which runs:)
WGSL_S=230 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --skip-sweep --protocol-defaults --unsafe
