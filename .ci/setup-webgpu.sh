#!/usr/bin/env bash
# Mesa's software rasterizer for Dawn's OpenGL ES backend: the WGSL tests run on it (no GPU in CI).
# Idempotent and quiet: installs only what is missing.
set -euo pipefail
pkgs=(libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-webgpu: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
