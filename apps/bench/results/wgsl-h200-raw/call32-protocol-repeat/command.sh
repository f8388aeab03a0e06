#!/bin/bash
# Call 32: call 31 again on a fresh machine: the protocol on the library defaults (head dim 64: 128x16 T256 mma sharedKV prefetchNext),
# call 25's command, conformance first, robustness off for noop/causal, anchors in the same call.
WGSL_S=230 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --skip-sweep --protocol-defaults --unsafe
