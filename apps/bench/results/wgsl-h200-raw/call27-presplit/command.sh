#!/bin/bash
# Call 27: presplitKV probe (K/V split on the GPU beforehand, fragments read from global memory).
source apps/bench/device/wgsl/prepare.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $OUT/gpu.txt
/tmp/n/node .node/wgsl-presplit-probe.mjs --out $OUT 2>&1 | tee $OUT/presplit.log
