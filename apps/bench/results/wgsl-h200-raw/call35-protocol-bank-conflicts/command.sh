#!/bin/bash
# Bundled from commit 5df1163 (the defaults padS, staggerS, staggerSplit on; labels name them only when off since).
# Call 35: the protocol on the new library defaults (head dim 64: 128x32 T256 mma sharedKV prefetchNext;
# 128: 128x16 T256 mma sharedKV prefetchNext; S rows padded and staggered, split stores staggered),
# call 25's command, conformance first, robustness off for noop/causal, anchors in the same call.
WGSL_S=230 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --skip-sweep --protocol-defaults --unsafe
