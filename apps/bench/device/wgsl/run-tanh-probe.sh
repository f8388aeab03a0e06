#!/usr/bin/env bash
# One device call: WGSL softcap-causal with both tanh renderings (wgsl-tanh-probe.ts, bundled to
# .node/wgsl-tanh-probe.mjs), then the flex_attention f32 anchor (softcap_anchor.py).
set -uo pipefail
source "$(dirname "$0")/prepare.sh"
timeout 120 /tmp/n/node .node/wgsl-tanh-probe.mjs --out "$OUT" 2>&1 | grep -v '^Warning' | tee "$OUT/probe-log.txt"
timeout 150 python3 apps/bench/device/wgsl/softcap_anchor.py "$OUT" 2>&1 | grep -v Warning | tail -5 | tee "$OUT/anchor-log.txt"
