# Device command (repo root, .node and .gl carried; bundles built here as in apps/bench/device/wgsl/README.md;
# order-probe.mjs and attn-mma.mjs copied into .node/probe/, wgsl-bench.mjs and bisect.mjs bundled from apps/bench/src).
# call 17 (session call 1 of 2026-12-02's fifth session; the probe part of wgsl-h200-raw/call15-*/command.sh):
cd .node/probe && PHASES=attn,attn+exp,attn+rescale,attn+rescale+2loops,attn-s,attn-pv timeout 200 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
# call 18 (session call 2 of 2026-12-02's fifth session; the probe part of wgsl-h200-raw/call16-*/command.sh):
cd .node/probe && PHASES=attn+flag,attn+trip,attn+rescale,attn+exp+2loops timeout 200 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
# call 19 (session call 3 of 2026-12-02's fifth session; the probe part of wgsl-h200-raw/call17-*/command.sh):
cd .node/probe && PHASES=attn+flag+nobranch,attn+rescale+nobranch,attn+exp+div timeout 150 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
# call 20 (session call 4 of 2026-12-02's fifth session; the probe part of wgsl-h200-raw/call18-*/command.sh):
cd .node/probe && PHASES=attn+exp+divplain,attn+exp+atomic,attn+exp+divpriv,attn+exp+div+atomicfirst,attn+flag+atomicfirst timeout 150 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
# call 21 (session call 5 of 2026-12-02's fifth session; the probe part of wgsl-h200-raw/call19-*/command.sh):
cd .node/probe && PHASES=attn+rescale+atomicfirst,attn+rescale+atomicfirst+nodep,attn+nodep timeout 150 /tmp/n/node order-probe.mjs 2>&1 | grep -v '^Warning' | tee $OUT/order-probe-attn.txt
