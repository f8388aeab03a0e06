# Device command (repo root, .node and .gl carried; bundles built here as in apps/bench/device/wgsl/README.md;
# order-probe.mjs and attn-mma.mjs copied into .node/probe/, wgsl-bench.mjs and bisect.mjs bundled from apps/bench/src).
source apps/bench/device/wgsl/prepare.sh
cd .node/probe && PHASES=attn+rescale+atomicfirst,attn+rescale+atomicfirst+nodep,attn+nodep timeout 150 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
cd .. && timeout 300 /tmp/n/node bisect.mjs --experiments layout --out $OUT 2>&1 | grep -v '^Warning' | tee $OUT/experiments-log.txt
