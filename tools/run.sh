#!/usr/bin/env bash
# The main job on a fresh machine: installs dependencies, builds troupe, and trains the default
# config (the DeepSpeed CIFAR example net with an 8-expert MoE layer, on Fashion-MNIST, on the CPU),
# then draws its plots (troupe train --plot) and prints where they are.
# Usage: tools/run.sh [CONFIG] [troupe train options...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh build
config="${1:-configs/fashion_mnist_moe.json}"
shift || true
exec tools/troupe-launch "$config" --plot "$@"
