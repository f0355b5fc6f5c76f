#!/usr/bin/env bash
# Checks that tools/troupe-launch forwards `--deepspeed_config FILE` (and every other option) to
# `troupe train` unchanged, using a stand-in troupe binary that prints its arguments.
set -euo pipefail
launch="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
printf '#!/usr/bin/env bash\necho "$@"\n' > "$dir/troupe"
chmod +x "$dir/troupe"
got="$(TROUPE_BIN="$dir/troupe" WORLD_SIZE=1 "$launch" cfg.json --deepspeed_config ds.json --steps 3 --overwrite_checkpoints)"
expected="train cfg.json --deepspeed_config ds.json --steps 3 --overwrite_checkpoints"
if [ "$got" != "$expected" ]; then
  echo "troupe-launch passed: '$got'; expected: '$expected'" >&2
  exit 1
fi
