#!/bin/bash
# Call 30: conformance on 64x16 T128 sharedKV prefetchNext; sweep of 128/64/32-row tiles with and without
# prefetchNext; the protocol on each variant's best swept config, beside the anchors. The driver's shader
# cache goes to $OUT/glcache, scanned for ELF images afterwards (register counts, if the tools are there).
export __GL_SHADER_DISK_CACHE_PATH=$OUT/glcache __GL_SHADER_DISK_CACHE_SKIP_CLEANUP=1
mkdir -p $OUT/glcache
WGSL_S=390 ANCHOR_BUDGET_S=105 TORCH_S=130 bash apps/bench/device/wgsl/run.sh --subgroup-matrix --matrix-only \
  --conformance-config '{"blockM":64,"blockN":16,"options":{"shareKV":true,"prefetchNext":true}}'
timeout 40 python3 .node/sass.py $OUT/glcache $OUT/sass > $OUT/sass.log 2>&1; tail -5 $OUT/sass.log
ls /usr/local/cuda/bin | tr '\n' ' '
du -sh $OUT/glcache; [ "$(du -sm $OUT/glcache | cut -f1)" -gt 20 ] && rm -rf $OUT/glcache
