#!/bin/bash
# Bundled from the working tree just before commit 5df1163: the same sources except that staggerS and staggerSplit were still off by default (padS on) and the measured defaults still 128x16 at both head dims.
# Call 33: workgroup-memory bank conflicts. The ablation probe on the new default (S rows padded,
# padS) against the old layout (padS off), lanes 16-31 visiting S rotated (staggerS), staggered
# split stores (staggerSplit), 32-key tiles; then the conformance suite with staggerS +
# staggerSplit forced on every matrix candidate, and again on 32-key tiles where they fit.
source apps/bench/device/wgsl/prepare.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
mkdir -p $OUT/ablation $OUT/conformance $OUT/conformance-32
timeout 300 /tmp/n/node .node/wgsl-ablation-probe.mjs --out $OUT/ablation 2>&1 | tee $OUT/ablation/ablation.log
timeout 120 /tmp/n/node .node/wgsl-bench.mjs --out $OUT/conformance --subgroup-matrix --conformance-only --conformance-config '{"options":{"staggerS":true,"staggerSplit":true}}' 2>&1 | grep -v '^Warning: max' > $OUT/conformance/wgsl-log.txt
tail -n 4 $OUT/conformance/wgsl-log.txt
timeout 120 /tmp/n/node .node/wgsl-bench.mjs --out $OUT/conformance-32 --subgroup-matrix --conformance-only --conformance-config '{"blockN":32,"options":{"shareKV":true,"staggerS":true,"staggerSplit":true}}' 2>&1 | grep -v '^Warning: max' > $OUT/conformance-32/wgsl-log.txt
tail -n 4 $OUT/conformance-32/wgsl-log.txt
