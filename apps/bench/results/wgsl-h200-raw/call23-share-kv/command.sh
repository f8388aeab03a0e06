WGSL_S=390 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --matrix-only --conformance-config '{"blockN":32,"options":{"shareKV":true}}'
