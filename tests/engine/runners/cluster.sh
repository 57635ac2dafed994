#!/usr/bin/env bash
# A 2-node Ray test cluster (head + worker2, each with one custom "TPU") on this machine,
# loopback only. Used by tests/engine/runners/raycluster.py and bench/bench_ray.py.
#
#   cluster.sh hold         new network + PID namespace (`unshare -n -p -f --mount-proc`): start
#                           the cluster, print "ready <address> <pid>" on stdout, wait until stdin
#                           closes, stop the cluster. Everything in the namespace dies with it.
#   cluster.sh start        start head + worker2 in the CURRENT netns (refused unless the only
#                           interface is lo, i.e. inside `unshare -n`)
#   cluster.sh stop         `ray stop --force`, then SIGKILL what is left of this cluster
#   cluster.sh kill-node NAME     SIGKILL that node's raylet and everything under it (a host dying)
#   cluster.sh add-worker NAME [AGENT_PORT]   one more raylet
#
# Settings (environment): PYTHON (the interpreter whose `ray` is used), RAY_PORT (6390),
# RAY_TEMP (/tmp/rt-$$; keep it SHORT: unix socket paths are limited to 107 bytes),
# NODE_CPUS (1), NODE_RESOURCES ('{"TPU": 1}'), OBJECT_STORE (bytes per node).
#
# Why a PID namespace too: `ray stop --force` kills EVERY Ray process it can see, whatever
# cluster it belongs to; here it can only see this one.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
RAY_BIN="${RAY_BIN:-$(dirname "$PYTHON")/ray}"
RAY_PORT="${RAY_PORT:-6390}"
RAY_TEMP="${RAY_TEMP:-/tmp/rt-$$}"
NODE_CPUS="${NODE_CPUS:-1}"
DEFAULT_RESOURCES='{"TPU": 1}'
NODE_RESOURCES="${NODE_RESOURCES:-$DEFAULT_RESOURCES}"
OBJECT_STORE="${OBJECT_STORE:-300000000}"
export RAY_USAGE_STATS_ENABLED=0 RAY_TEMP RAY_PORT PYTHON RAY_BIN

log() { printf '[cluster.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

only_loopback() {
  # (not /sys/class/net: sysfs shows the namespace it was mounted in)
  [[ "$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')" == "lo " ]]
}

require_netns() {
  if ! only_loopback; then
    echo "cluster.sh: refusing to start Ray outside a network namespace (use: cluster.sh hold)" >&2
    exit 2
  fi
  ip link set lo up
}

wait_nodes() {  # wait until $1 nodes are alive (60 s at most)
  "$PYTHON" - "$1" "127.0.0.1:$RAY_PORT" <<'PY'
import sys, time
from ray._raylet import GcsClient
want, address = int(sys.argv[1]), sys.argv[2]
deadline, alive = time.monotonic() + 60, []
while True:
    try:
        alive = [n for n in GcsClient(address=address).get_all_node_info(timeout=5).values() if n.state == 0]
        if len(alive) >= want:
            sys.exit(0)
    except Exception:
        pass
    if time.monotonic() > deadline:
        sys.exit(f"only {len(alive)} of {want} nodes alive after 60 s")
    time.sleep(0.2)
PY
}

add_worker() {  # $1 = node name, $2 = dashboard agent port (the head's 52365 is taken)
  "$RAY_BIN" start --address="127.0.0.1:$RAY_PORT" --node-ip-address=127.0.0.1 \
      --num-cpus="$NODE_CPUS" --resources="$NODE_RESOURCES" --object-store-memory="$OBJECT_STORE" \
      --dashboard-agent-listen-port="$2" --disable-usage-stats --node-name="$1" \
      --temp-dir="$RAY_TEMP" >"$RAY_TEMP/start-$1.log" 2>&1 \
    || { cat "$RAY_TEMP/start-$1.log" >&2; exit 1; }
}

start() {
  require_netns
  mkdir -p "$RAY_TEMP"
  "$RAY_BIN" start --head --node-ip-address=127.0.0.1 --port="$RAY_PORT" \
      --num-cpus="$NODE_CPUS" --resources="$NODE_RESOURCES" --object-store-memory="$OBJECT_STORE" \
      --include-dashboard=false --disable-usage-stats --node-name=head \
      --temp-dir="$RAY_TEMP" >"$RAY_TEMP/start-head.log" 2>&1 \
    || { cat "$RAY_TEMP/start-head.log" >&2; exit 1; }
  add_worker worker2 52366
  wait_nodes 2
  grep -h "Local node IP" "$RAY_TEMP"/start-head.log "$RAY_TEMP"/start-worker2.log | sed 's/\x1b\[[0-9;]*m//g' >&2 || true
}

raylet_pid() {  # $1 = node name
  local pid
  for pid in $(pgrep -f "raylet .*--temp_dir=$RAY_TEMP" || true); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--node-name=$1\b"; then echo "$pid"; return 0; fi
  done
  return 1
}

descendants() {
  local child
  for child in $(pgrep -P "$1" || true); do echo "$child"; descendants "$child"; done
}

kill_node() {
  local pid all
  pid="$(raylet_pid "$1")" || { echo "no raylet for node $1" >&2; exit 1; }
  all="$pid $(descendants "$pid" | tr '\n' ' ')"
  log "SIGKILL node $1: $all"
  kill -KILL $all 2>/dev/null || true
}

stop() {
  "$RAY_BIN" stop --force >"$RAY_TEMP/stop.log" 2>&1 || true
  pkill -KILL -f -- "$RAY_TEMP" 2>/dev/null || true  # only this namespace's processes are visible
}

hold() {
  # -n: own network (only lo); -p -f --mount-proc: own PID space, so `ray stop` sees only this
  # cluster; --kill-child: if unshare dies, its child (PID 1 there) and so everything goes too.
  exec unshare -n -p -f --mount-proc --kill-child=SIGKILL bash -c '
    ip link set lo up
    "$0" start || { echo "failed" ; exit 1; }
    echo "ready 127.0.0.1:$RAY_PORT $$"
    cat >/dev/null   # until the caller closes our stdin
    "$0" stop' "$HERE/cluster.sh"
}

case "${1:-}" in
  hold) hold ;;
  start) start ;;
  stop) stop ;;
  kill-node) kill_node "${2:?node name}" ;;
  add-worker) require_netns; add_worker "${2:?node name}" "${3:-52367}"; wait_nodes 2 ;;
  *) sed -n "2,20p" "$0"; exit 2 ;;
esac
