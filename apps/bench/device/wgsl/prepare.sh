# Sourced by the device scripts (run from the repo root on the GPU machine): unpacks the Vulkan
# loader from .gl/*.deb, points Vulkan at the NVIDIA ICD, and unpacks Node to /tmp/n/node and
# Dawn into .node/node_modules/webgpu (apps/bench/device/wgsl/README.md says how .node and .gl
# are built).
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp
mkdir -p /tmp/n "$OUT" .node/node_modules/webgpu/dist/linux-x64
xz -dc .node/node.xz > /tmp/n/node && chmod +x /tmp/n/node
xz -dc .node/dawn.node.xz > .node/node_modules/webgpu/dist/linux-x64/dawn.node
