#!/usr/bin/env bash
# One device call: the WGSL benchmark (flexAttention as a user calls it, Dawn/Vulkan), then the
# PyTorch f32 anchors in the same call. Arguments go to wgsl-bench.mjs. Expects in the repo root:
# .gl/*.deb (Vulkan loader), .node/{node.xz,dawn.node.xz,wgsl-bench.mjs,node_modules/webgpu/*}
# (apps/bench/device/wgsl/README.md says how they are built).
set -uo pipefail
source "$(dirname "$0")/prepare.sh"
echo "WGSL_S=${WGSL_S:-330} TORCH_S=${TORCH_S:-250} ANCHOR_BUDGET_S=${ANCHOR_BUDGET_S:-200} bash apps/bench/device/wgsl/run.sh $*" > "$OUT/command.txt"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv > "$OUT/gpu.txt" 2>&1
export FLEXATTN_WEBGPU_BACKEND=${FLEXATTN_WEBGPU_BACKEND:-vulkan}
timeout "${WGSL_S:-330}" /tmp/n/node .node/wgsl-bench.mjs --out "$OUT" "$@" 2>&1 | grep -v '^Warning: max' > "$OUT/wgsl-log.txt"
tail -n 30 "$OUT/wgsl-log.txt"
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  ANCHOR_BUDGET_S=${ANCHOR_BUDGET_S:-200} timeout "${TORCH_S:-250}" python3 apps/bench/device/wgsl/torch_anchors.py "$OUT" > "$OUT/torch-log.txt" 2>&1
  grep -v Warning "$OUT/torch-log.txt" | tail -n 25
fi
