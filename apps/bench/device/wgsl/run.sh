#!/usr/bin/env bash
# One device call: WGSL (Dawn/Vulkan) conformance + sweep + protocol, then the PyTorch anchors.
# Expects in the repo root: .gl/*.deb (Vulkan loader), .node/{node.xz,dawn.node.xz,wgsl-bench.mjs,
# node_modules/webgpu/{index.js,package.json}} (see apps/bench/device/wgsl/README.md).
set -uo pipefail
source "$(dirname "$0")/prepare.sh"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv > "$OUT/gpu.txt" 2>&1
WGSL_S=${WGSL_S:-330}
timeout "$WGSL_S" /tmp/n/node .node/wgsl-bench.mjs --out "$OUT" "$@" 2>&1 | grep -v '^Warning: max' > "$OUT/wgsl-log.txt"
tail -n 45 "$OUT/wgsl-log.txt"
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  ANCHOR_BUDGET_S=${ANCHOR_BUDGET_S:-200} timeout "${TORCH_S:-250}" python3 apps/bench/device/wgsl/torch_anchors.py "$OUT" > "$OUT/torch-log.txt" 2>&1
  grep -v Warning "$OUT/torch-log.txt" | tail -n 25
fi
