# Device command (repo root, .node and .gl carried; order-probe.mjs copied into .node/probe/):
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json XDG_RUNTIME_DIR=/tmp __GL_SHADER_DISK_CACHE=0; mkdir -p /tmp/n .node/node_modules/webgpu/dist/linux-x64 $OUT; xz -dc .node/node.xz > /tmp/n/node && chmod +x /tmp/n/node; xz -dc .node/dawn.node.xz > .node/node_modules/webgpu/dist/linux-x64/dawn.node
# call 14: the phases load, pp, store (the default list then)
cd .node/probe && (PHASES=load,pp,store timeout 200 /tmp/n/node order-probe.mjs 2>&1; echo "exit $?") | tee $OUT/order-probe-log.txt
# call 15: the hold phases
cd .node/probe && (PHASES=hold-1-1,hold-8-8,hold-8-8-reload,hold-8-1 timeout 200 /tmp/n/node order-probe.mjs 2>&1; echo "exit $?") | tee $OUT/order-probe-log.txt
# call 16: the kv phase (same preparation as calls 14-15)
cd .node/probe && (PHASES=kv timeout 200 /tmp/n/node order-probe.mjs 2>&1; echo "exit $?") | tee $OUT/order-probe-log.txt
