# Device command (repo root, .node and .gl carried; bundles built here as in apps/bench/device/wgsl/README.md;
# order-probe.mjs and attn-mma.mjs copied into .node/probe/, wgsl-bench.mjs and bisect.mjs bundled from apps/bench/src).
source apps/bench/device/wgsl/prepare.sh
cd .node/probe && PHASES=attn+flag,attn+trip,attn+rescale,attn+exp+2loops timeout 200 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
cd ../..
WGSL_S=200 SKIP_TORCH=1 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --quick --configs .node/mma-configs.json | grep -v "^PASS"
