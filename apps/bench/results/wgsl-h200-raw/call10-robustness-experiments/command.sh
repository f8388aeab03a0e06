# Ran as is on the device (repo root, .node and .gl carried, bisect.mjs bundled from apps/bench/src/wgsl-matrix-bisect.ts).
# The harness then took a bare --experiments and ran the set now named "robustness": today the same run is --experiments robustness.
set -x
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp __GL_SHADER_DISK_CACHE=0; mkdir -p /tmp/n .node/node_modules/webgpu/dist/linux-x64 $OUT; xz -dc .node/node.xz > /tmp/n/node && chmod +x /tmp/n/node; xz -dc .node/dawn.node.xz > .node/node_modules/webgpu/dist/linux-x64/dawn.node
cd .node && timeout 300 /tmp/n/node bisect.mjs --experiments --out $OUT 2>&1 | tee $OUT/experiments-log.txt; cd ..
cd .node/probe && for t in "" disable_robustness; do EXTRA_TOGGLES=$t SKIP_PLAIN=1 SKIP_GEMM=1 VARIANTS="$(cat variants12.json)" OUT=$OUT timeout 120 /tmp/n/node probe.mjs 2>&1 | tee -a $OUT/probe-log.txt; done
