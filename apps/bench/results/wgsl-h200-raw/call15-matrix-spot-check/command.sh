# Device command (repo root, .node and .gl carried; bundles built here as in apps/bench/device/wgsl/README.md;
# order-probe.mjs and attn-mma.mjs copied into .node/probe/, wgsl-bench.mjs and bisect.mjs bundled from apps/bench/src).
source apps/bench/device/wgsl/prepare.sh
nvidia-smi --query-gpu=name,driver_version --format=csv | tail -1
cd .node/probe && PHASES=attn,attn+exp,attn+rescale,attn+rescale+2loops,attn-s,attn-pv timeout 200 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
cd ../..
WGSL_S=330 SKIP_TORCH=1 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --configs .node/mma-configs.json
