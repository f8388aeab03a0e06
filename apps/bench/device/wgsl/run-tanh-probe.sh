#!/usr/bin/env bash
# One device call: WGSL softcap-causal with both tanh renderings (wgsl-tanh-probe.ts, bundled to
# .node/wgsl-tanh-probe.mjs), then the flex_attention f32 anchor (softcap_anchor.py).
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp
mkdir -p /tmp/n "$OUT"
xz -dc .node/node.xz > /tmp/n/node && chmod +x /tmp/n/node
xz -dc .node/dawn.node.xz > .node/node_modules/webgpu/dist/linux-x64/dawn.node
timeout 120 /tmp/n/node .node/wgsl-tanh-probe.mjs --out "$OUT" 2>&1 | grep -v '^Warning' | tee "$OUT/probe-log.txt"
timeout 150 python3 apps/bench/device/wgsl/softcap_anchor.py "$OUT" 2>&1 | grep -v Warning | tail -5 | tee "$OUT/anchor-log.txt"
