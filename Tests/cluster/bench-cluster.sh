#!/bin/bash
# Cluster benchmark: ordered request latency and throughput of mirrorlogd on a real 3-node corosync
# cluster in network namespaces, side by side with the raw CPG round trip measured in the same run.
#
# Usage: bench-cluster.sh <mirrorlogd> <mirrorlog-cpgbench> [rounds]
# Prints one JSON line per measurement and a summary; writes nothing into the repository.
set -euo pipefail

DAEMON=$(readlink -f "$1")
BENCH=$(readlink -f "$2")
ROUNDS=${3:-3}
HERE=$(cd "$(dirname "$0")" && pwd)
export CLUSTER_PREFIX=${CLUSTER_PREFIX:-mldbn-}
NETNS="$HERE/netns-cluster.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mld-bench.XXXXXX")
LOGS=16

cleanup() {
    pkill -9 -f "$WORK/" 2>/dev/null || true
    "$NETNS" down >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start_daemons() { # extra daemon arguments...
    pkill -9 -f "$WORK/n[0-9]/k.sock" 2>/dev/null || true
    sleep 0.5
    for k in 1 2 3; do
        mkdir -p "$WORK/n$k"
        rm -f "$WORK/n$k/k.sock" "$WORK/n$k/pid"
        # --no-fencing: this host's kernel has no DLM (the barrier costs nothing per request anyway).
        "$NETNS" exec "$k" "$DAEMON" -f --no-fencing --kernel-socket "$WORK/n$k/k.sock" --pidfile "$WORK/n$k/pid" \
            --runtime-directory "$WORK/n$k/rt" "$@" >"$WORK/n$k/daemon.log" 2>&1 &
        disown
    done
    for k in 1 2 3; do
        for _ in $(seq 100); do [ -S "$WORK/n$k/k.sock" ] && break; sleep 0.1; done
        [ -S "$WORK/n$k/k.sock" ] || { echo "daemon on node $k did not start" >&2; cat "$WORK/n$k/daemon.log" >&2; exit 1; }
    done
    # Nodes 2 and 3 serve the same logs (their kernels idle), so every log has three members.
    for k in 2 3; do
        timeout 600 "$BENCH" requests --socket "$WORK/n$k/k.sock" --logs "$LOGS" --setup-only --hold 500 \
            >"$WORK/n$k/setup.out" 2>&1 &
        disown
    done
    for k in 2 3; do
        for _ in $(seq 200); do grep -q ready "$WORK/n$k/setup.out" 2>/dev/null && break; sleep 0.1; done
        grep -q ready "$WORK/n$k/setup.out" || { echo "node $k: logs not set up" >&2; cat "$WORK/n$k/setup.out" "$WORK/n$k/daemon.log" >&2; exit 1; }
    done
}

timeout 120 "$NETNS" up 3 >/dev/null
# Passive members of the raw group on nodes 2 and 3, for the raw round trip.
for k in 2 3; do
    "$NETNS" exec "$k" timeout 900 "$BENCH" member --group mld-raw-bench --seconds 850 >/dev/null 2>&1 &
    disown
done

run() { # label, command...
    local label=$1
    shift
    local out
    out=$(timeout 300 "$@")
    echo "{\"measure\":\"$label\",\"result\":$out}" | tee -a "$WORK/results.jsonl"
}

start_daemons
for round in $(seq "$ROUNDS"); do
    run raw_cpg_rtt "$NETNS" exec 1 "$BENCH" rtt --group mld-raw-bench --count 3000 --wait-members 3
    run ordered_1_log "$BENCH" requests --socket "$WORK/n1/k.sock" --logs 1 --count 3000 --luid-base $((round * 100))
    run ordered_16_logs "$BENCH" requests --socket "$WORK/n1/k.sock" --logs "$LOGS" --count 16000 --luid-base $((round * 100 + 1000))
done
start_daemons --cluster-operations-per-message 1
for round in $(seq "$ROUNDS"); do
    run one_request_per_message_16_logs "$BENCH" requests --socket "$WORK/n1/k.sock" --logs "$LOGS" --count 16000 --luid-base $((round * 100 + 5000))
done

# Medians over the rounds, and the ratios the targets are about.
python3 - "$WORK/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(label, key):
    values = [r["result"][key] for r in rows if r["measure"] == label]
    return statistics.median(values) if values else float("nan")
raw_p50, raw_p99 = med("raw_cpg_rtt", "p50_us"), med("raw_cpg_rtt", "p99_us")
raw_tput = med("raw_cpg_rtt", "throughput_per_s")
one_p50, one_p99 = med("ordered_1_log", "p50_us"), med("ordered_1_log", "p99_us")
one_tput = med("ordered_1_log", "throughput_per_s")
many_tput = med("ordered_16_logs", "throughput_per_s")
unbatched = med("one_request_per_message_16_logs", "throughput_per_s")
print(f"summary: raw CPG round trip p50 {raw_p50:.0f} us p99 {raw_p99:.0f} us ({raw_tput:.0f}/s one at a time)")
print(f"summary: ordered request (1 log) p50 {one_p50:.0f} us p99 {one_p99:.0f} us = {one_p50 / raw_p50:.2f}x the raw p50 (target <= 1.3x); {one_tput:.0f}/s")
print(f"summary: 16 logs busy: {many_tput:.0f} requests/s = {many_tput / unbatched:.2f}x one request per CPG message ({unbatched:.0f}/s, 16 logs), "
      f"{many_tput / one_tput:.2f}x one ordered request at a time, {many_tput / raw_tput:.2f}x one raw CPG round trip at a time (target >= 5x)")
PY
