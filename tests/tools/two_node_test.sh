#!/usr/bin/env bash
# Two nodes on one machine: the hostfile path of `troupe launch` for real. Inside user, network and
# mount namespaces (`unshare -Urnm`, unprivileged) it makes two named network namespaces joined by
# a veth pair (10.77.0.1 and 10.77.0.2, the device called troupe0 on both sides), runs the
# launcher in the first with a hostfile of both addresses (2 slots each) and a TROUPE_SSH stand-in
# that starts the second node's launcher with `ip netns exec`, and trains a tiny world of 4 (ep 2)
# with UCX over TCP on troupe0 only. Checks: exit 0, every rank's checkpoint, the second node's
# launcher ran in the second namespace, every rank met the others at 10.77.0.1, and the veth
# carried the ranks' traffic both ways. Exits 77 (skipped) only when `unshare -Urnm` is not
# permitted on this machine.
# Usage: two_node_test.sh TROUPE_EXECUTABLE SOURCE_DIR
set -euo pipefail
troupe="$(readlink -f "$1")"
source_dir="$(readlink -f "$2")"
fail() { echo "FAIL: $*" >&2; exit 1; }

if [ "${TWO_NODE_TEST_INSIDE:-0}" != 1 ]; then
  command -v unshare > /dev/null || fail "unshare (util-linux) is not installed"
  command -v ip > /dev/null || fail "ip (iproute2) is not installed"
  if ! why="$(unshare -Urnm true 2>&1)"; then
    echo "SKIP: unshare -Urnm is not permitted on this machine ($why); the two-node test needs" \
      "unprivileged user namespaces" >&2
    exit 77
  fi
  TWO_NODE_TEST_INSIDE=1 exec unshare -Urnm bash "$0" "$@"
fi

# From here on: root of fresh user, network and mount namespaces. `ip netns add` keeps its
# namespaces in /run/netns, which an unprivileged user cannot create; a tmpfs over /run (seen
# only in this mount namespace) gives a writable one without touching the machine's /run.
mount -t tmpfs tmpfs /run
mkdir /run/netns
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

ip link set lo up
ip link add troupe-a type veth peer name troupe-b
for side in a b; do
  ip netns add "node-$side"
  ip link set "troupe-$side" netns "node-$side"
  ip -n "node-$side" link set "troupe-$side" name troupe0
  ip -n "node-$side" link set lo up
done
ip -n node-a addr add 10.77.0.1/24 dev troupe0
ip -n node-b addr add 10.77.0.2/24 dev troupe0
ip -n node-a link set troupe0 up
ip -n node-b link set troupe0 up

# Tiny Fashion-MNIST-shaped IDX files: 64 training and 16 test images, labels 0 to 9.
idx() {  # PREFIX COUNT
  local count_hex
  count_hex="$(printf '\\x%02x\\x%02x' $(($2 / 256)) $(($2 % 256)))"
  {
    printf "\\x00\\x00\\x08\\x03\\x00\\x00$count_hex\\x00\\x00\\x00\\x1c\\x00\\x00\\x00\\x1c"
    head -c $(($2 * 28 * 28)) < <(yes "$(printf '\x10\x80\xf0\x33\x5a\xc7')")
  } > "$dir/data/$1-images-idx3-ubyte"
  {
    printf "\\x00\\x00\\x08\\x01\\x00\\x00$count_hex"
    for ((i = 0; i < $2; ++i)); do printf "\\x0$((i * 7 % 10))"; done
  } > "$dir/data/$1-labels-idx1-ubyte"
}
mkdir "$dir/data"
idx train 64
idx t10k 16

# The shipped config on that data: world 4 (2 ranks a node), ep_size 2, a global batch of 16 in
# micro-batches of 4, 3 steps, ZeRO stage 0, no clipping, a checkpoint at the end.
sed -e 's|"path": "/usr/share/datasets/fashion-mnist"|"path": "'"$dir"'/data"|' \
  -e 's/"train_batch_size": 64/"train_batch_size": 16/' \
  -e 's/"train_micro_batch_size_per_gpu": 32/"train_micro_batch_size_per_gpu": 4/' \
  -e 's/"gradient_clipping": [0-9.]*/"gradient_clipping": 0.0/' \
  -e 's/"stage": 1/"stage": 0/' -e 's/"ep_size": 1/"ep_size": 2/' \
  -e 's/"optimizer_partitions": 2/"optimizer_partitions": 1/' \
  -e 's/"stage_replicas": 2/"stage_replicas": 1/' \
  -e 's|"epochs": 9|"train_steps": 3, "world_size": 4, "master_timeout": 20, "checkpoint": {"dir": "'"$dir"'/ckpt", "interval": 3}|' \
  "$source_dir/configs/fashion_mnist_moe.json" > "$dir/config.json"
for key in '"path": "'"$dir"'/data"' '"train_batch_size": 16' '"stage": 0' '"ep_size": 2' \
  '"stage_replicas": 1' '"world_size": 4' '"train_micro_batch_size_per_gpu": 4'; do
  grep -qF "$key" "$dir/config.json" || fail "configs/fashion_mnist_moe.json changed: no $key after editing"
done

printf '10.77.0.1 slots=2\n10.77.0.2 slots=2\n' > "$dir/hostfile"
# The ssh stand-in: "host" 10.77.0.N is network namespace node-a or node-b; it logs the host and
# the namespace the command runs in.
cat > "$dir/ssh" <<'SH'
#!/usr/bin/env bash
case "$1" in
  10.77.0.1) ns=node-a ;;
  10.77.0.2) ns=node-b ;;
  *) echo "ssh stand-in: unknown host $1" >&2; exit 255 ;;
esac
exec ip netns exec "$ns" bash -c 'echo "$0 in $(ip netns identify)" >> "$SSH_LOG"; eval "$1"' "$1" "$2"
SH
chmod +x "$dir/ssh"

cd "$dir"
set +e
ip netns exec node-a env SSH_LOG="$dir/ssh.log" TROUPE_SSH="$dir/ssh" UCX_TLS=tcp \
  UCX_NET_DEVICES=troupe0 OPENBLAS_NUM_THREADS=1 \
  "$troupe" launch --hostfile "$dir/hostfile" --master_addr 10.77.0.1 --master_port 29577 \
  "$dir/config.json" > "$dir/launch.log" 2>&1
rc=$?
set -e
[ "$rc" = 0 ] || fail "troupe launch exited $rc:
$(cat "$dir/launch.log")"

for rank in 0 1 2 3; do
  ls "$dir/ckpt/rank$rank/"*.safetensors > /dev/null 2>&1 \
    || fail "rank $rank wrote no checkpoint: $(ls -R "$dir/ckpt")"
  grep -q "rank $rank of 4: meeting the others at 10.77.0.1:29577" "$dir/launch.log" \
    || fail "rank $rank did not meet the others at 10.77.0.1:29577:
$(cat "$dir/launch.log")"
done
[ "$(cat "$dir/ssh.log")" = "10.77.0.2 in node-b" ] \
  || fail "the second node's launcher: $(cat "$dir/ssh.log")"

# The ranks of one namespace reach those of the other only through the veth pair: it must have
# carried the training's traffic (gradients and expert all-to-alls, well over 100 kB) both ways.
for side in a b; do
  stats=/sys/class/net/troupe0/statistics  # `ip netns exec` mounts the namespace's own /sys
  rx="$(ip netns exec "node-$side" cat $stats/rx_bytes)"
  tx="$(ip netns exec "node-$side" cat $stats/tx_bytes)"
  [ "$rx" -gt 100000 ] && [ "$tx" -gt 100000 ] \
    || fail "node-$side's troupe0 carried $rx bytes in, $tx out"
  echo "node-$side troupe0: $rx bytes in, $tx out"
done
echo "two nodes: all checks passed"
