#!/usr/bin/env bash
# Installs what troupe needs on Debian 12 (build tools, libraries, gnuplot for `troupe plot`,
# iproute2 for the two-node test, datasets). Idempotent.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
packages=(cmake g++ make ninja-build ccache pkg-config
  libcaf-dev libucx-dev libboost-dev libspdlog-dev libfmt-dev catch2 nlohmann-json3-dev
  libopenblas-dev libcli11-dev zlib1g-dev gnuplot-nox
  iproute2 dataset-fashion-mnist bible-kjv-text bible-kjv)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
