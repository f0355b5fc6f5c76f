#!/usr/bin/env bash
# The main job on a fresh machine: installs dependencies, builds troupe, and trains the default
# config (the DeepSpeed CIFAR example net with an 8-expert MoE layer, on Fashion-MNIST, on the CPU),
# then draws its plots (troupe train --plot) and prints where they are; the trained model is saved
# as the final checkpoint in runs/<config name>/checkpoints, named on the last line. Running it
# again trains afresh and replaces that directory's previous run (--overwrite_checkpoints), so a
# second run does not stop at the previous run's checkpoints; copy them away to keep them.
# Usage: tools/run.sh [CONFIG] [troupe train options...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh build
config="${1:-configs/fashion_mnist_moe.json}"
shift || true
exec tools/troupe-launch "$config" --plot --overwrite_checkpoints "$@"
