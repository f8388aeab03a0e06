# Ran as is on the device (repo root, .node and .gl carried, bisect.mjs bundled from apps/bench/src/wgsl-matrix-bisect.ts).
# The harness then took a bare --experiments and ran the set now named "control": today the same run is --experiments control.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp __GL_SHADER_DISK_CACHE=0; mkdir -p /tmp/n .node/node_modules/webgpu/dist/linux-x64 $OUT; xz -dc .node/node.xz > /tmp/n/node && chmod +x /tmp/n/node; xz -dc .node/dawn.node.xz > .node/node_modules/webgpu/dist/linux-x64/dawn.node
cd .node && timeout 300 /tmp/n/node bisect.mjs --experiments --out $OUT 2>&1 | tee $OUT/experiments-log.txt
