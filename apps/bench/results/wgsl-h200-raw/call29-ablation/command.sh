#!/bin/bash
# Call 29: ablation probe (where a tile's time goes; prefetchNext, qk-2acc, 64x16 T128), then the
# conformance suite on matrix configs with prefetchNext forced.
source apps/bench/device/wgsl/prepare.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
mkdir -p $OUT/ablation $OUT/conformance
timeout 330 /tmp/n/node .node/wgsl-ablation-probe.mjs --out $OUT/ablation 2>&1 | tee $OUT/ablation/ablation.log
timeout 200 /tmp/n/node .node/wgsl-bench.mjs --out $OUT/conformance --subgroup-matrix --conformance-only --conformance-config '{"options":{"prefetchNext":true}}' 2>&1 | grep -v '^Warning: max' > $OUT/conformance/wgsl-log.txt
tail -n 8 $OUT/conformance/wgsl-log.txt
