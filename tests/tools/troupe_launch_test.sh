#!/usr/bin/env bash
# tools/troupe-launch and `troupe launch` as processes, with a stand-in program for the ranks:
# options after CONFIG reach `troupe train` unchanged; each rank gets the torchrun environment; a
# failing or killed rank stops the others well within 30 s and is named; a hostfile starts the
# other hosts through TROUPE_SSH; SIGTERM to the launcher stops every rank; and the real
# `troupe train`, given WORLD_SIZE > 1 by an outside launcher, refuses clearly.
# Usage: troupe_launch_test.sh LAUNCH_SCRIPT TROUPE_EXECUTABLE SOURCE_DIR
set -euo pipefail
launch="$1"
export TROUPE="$2"
source_dir="$3"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# The stand-in rank: prints what it was given; rank $FAIL_RANK exits 3 (or SIGKILLs itself with
# KILL_SELF=1); with either set, the other ranks sleep until stopped.
cat > "$dir/rank" <<'SH'
#!/usr/bin/env bash
echo "rank=$RANK world=$WORLD_SIZE local=$LOCAL_RANK/$LOCAL_WORLD_SIZE master=$MASTER_ADDR:$MASTER_PORT ucx=${UCX_TLS:-} args=$*" >> "$OUT"
if [ "$RANK" = "${FAIL_RANK:-none}" ]; then
  [ "${KILL_SELF:-0}" = 1 ] && kill -9 $$
  exit 3
fi
[ -n "${FAIL_RANK:-}${HOLD:-}" ] && sleep 100
exit 0
SH
chmod +x "$dir/rank"
export TROUPE_BIN="$dir/rank"

# 1. One rank, no launcher options: the options after CONFIG pass through unchanged.
OUT="$dir/one" "$launch" cfg.json --deepspeed_config ds.json --steps 3 --overwrite_checkpoints
grep -qx "rank= world= local=/ master=: ucx= args=train cfg.json --deepspeed_config ds.json --steps 3 --overwrite_checkpoints" "$dir/one" \
  || fail "one rank: $(cat "$dir/one")"

# 2. Three ranks on this node: the torchrun environment.
OUT="$dir/three" "$launch" --nproc_per_node 3 --master_port 29611 cfg.json --steps 2
[ "$(sort "$dir/three")" = "$(printf '%s\n' \
  "rank=0 world=3 local=0/3 master=127.0.0.1:29611 ucx= args=train cfg.json --steps 2" \
  "rank=1 world=3 local=1/3 master=127.0.0.1:29611 ucx= args=train cfg.json --steps 2" \
  "rank=2 world=3 local=2/3 master=127.0.0.1:29611 ucx= args=train cfg.json --steps 2")" ] \
  || fail "three ranks: $(cat "$dir/three")"

# 3. A failing rank, then a killed one: the others (sleeping 100 s) are stopped, the launcher
# exits with the rank's status and names it.
for case in exit kill; do
  start=$SECONDS
  set +e
  OUT="$dir/fail" FAIL_RANK=1 KILL_SELF=$([ $case = kill ] && echo 1 || echo 0) \
    "$launch" --nproc_per_node 3 cfg.json > "$dir/fail.err" 2>&1
  rc=$?
  set -e
  elapsed=$((SECONDS - start))
  expected_rc=$([ $case = kill ] && echo 137 || echo 3)
  [ "$rc" = "$expected_rc" ] || fail "$case: exit code $rc, expected $expected_rc"
  [ "$elapsed" -lt 30 ] || fail "$case: took $elapsed s to stop the other ranks"
  grep -q "rank 1 (node 0, local rank 1) $([ $case = kill ] && echo 'was killed by signal 9' || echo 'exited with code 3')" "$dir/fail.err" \
    || fail "$case: the failed rank is not named: $(cat "$dir/fail.err")"
done

# 4. A hostfile: the first host's ranks start here, the second host's launcher through
# TROUPE_SSH (a stand-in that runs the command line locally), with the forwarded UCX setting.
printf '# two hosts\nhost-a slots=2\nhost-b slots=1  # one rank\n' > "$dir/hostfile"
cat > "$dir/ssh" <<'SH'
#!/usr/bin/env bash
echo "$1" >> "$SSH_LOG"
exec bash -c "$2"
SH
chmod +x "$dir/ssh"
OUT="$dir/hosts" SSH_LOG="$dir/ssh.log" TROUPE_SSH="$dir/ssh" UCX_TLS=tcp \
  "$launch" --hostfile "$dir/hostfile" cfg.json
[ "$(cat "$dir/ssh.log")" = "host-b" ] || fail "hostfile: ssh started $(cat "$dir/ssh.log")"
[ "$(sort "$dir/hosts")" = "$(printf '%s\n' \
  "rank=0 world=3 local=0/2 master=host-a:29500 ucx=tcp args=train cfg.json" \
  "rank=1 world=3 local=1/2 master=host-a:29500 ucx=tcp args=train cfg.json" \
  "rank=2 world=3 local=0/1 master=host-a:29500 ucx=tcp args=train cfg.json")" ] \
  || fail "hostfile: $(cat "$dir/hosts")"

# 5. SIGTERM to the launcher stops every rank, and it exits 128 + 15.
OUT="$dir/term" HOLD=1 "$launch" --nproc_per_node 2 cfg.json > /dev/null 2>&1 &
launcher=$!
for _ in $(seq 100); do [ "$(wc -l < "$dir/term" 2> /dev/null || echo 0)" = 2 ] && break; sleep 0.1; done
kill -TERM $launcher
set +e
wait $launcher
rc=$?
set -e
[ "$rc" = 143 ] || fail "SIGTERM: exit code $rc, expected 143"
pgrep -f "$dir/rank" > /dev/null && fail "SIGTERM: ranks still running"

# 6. The real troupe train: a config of 2 ranks started without a launcher says how to start it.
unset TROUPE_BIN
sed -e 's/"runtime": {/"runtime": {"world_size": 2,/' -e 's/"stage": 1/"stage": 0/' \
  -e 's/"optimizer_partitions": 2/"optimizer_partitions": 1/' \
  "$source_dir/configs/fashion_mnist_moe.json" > "$dir/two.json"
set +e
env -u WORLD_SIZE -u RANK "$launch" "$dir/two.json" > "$dir/two.err" 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || fail "world_size 2 without a launcher: exit code $rc, expected 2"
grep -q "not started by a launcher.*troupe-launch --nproc_per_node 2" "$dir/two.err" \
  || fail "world_size 2 without a launcher: $(cat "$dir/two.err")"
echo "troupe-launch: all cases passed"
