#!/usr/bin/env bash
# run-multinode.sh — the multi-node fault suite for mirrorlogd's clustered logs.
#
#   run-multinode.sh <path to mirrorlogd> [multinode_suite.py options...]
#   run-multinode.sh <path to mirrorlogd> --self-check      # no cluster: one local daemon, core/disk logs
#
# Brings up a 3-node corosync cluster (CLUSTER_PREFIX=mldms-), runs the four fault scenarios (kill -9 of a
# daemon, kill of a corosync, a partition, a clean leave and rejoin) under load, checks the recorded
# history, and prints one PASS/FAIL line per scenario. Exit status non-zero on any failure.
#
# Environment: MLDMS_DEADLINE (default 300 s: the suite's global limit; the whole run, cleanup included,
# is killed at MLDMS_DEADLINE + 120 s), MLDMS_REQUEST_TIMEOUT (default 8 s: shorter than the kernel's 15 s
# so that held requests are also re-sent with new seqs, as the kernel does when a hold lasts longer).
#
# multinode_suite.py cleans up on every path it controls (daemons, `netns-cluster.sh down`, the loop
# device, its temp dir); this wrapper repeats that cleanup in case the Python process itself was killed.

set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=mldms-

if (( $# < 1 )) || [[ $1 == -h || $1 == --help ]]; then
    sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
BIN=$1
shift
[[ -x $BIN ]] || { echo "run-multinode.sh: $BIN is not an executable" >&2; exit 2; }
(( EUID == 0 )) || { echo "run-multinode.sh: must run as root" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

DEADLINE=${MLDMS_DEADLINE:-300}
REQUEST_TIMEOUT=${MLDMS_REQUEST_TIMEOUT:-8}
SELF_CHECK=0
for a in "$@"; do [[ $a == --self-check ]] && SELF_CHECK=1; done

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mldms-run.XXXXXX")

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local dev file pid
    # Daemons started directly (self-check) are found by their pidfiles under our run dir.
    for file in "$RUN_DIR"/*/n*/mirrorlogd.pid; do
        [[ -f $file ]] || continue
        pid=$(head -n1 "$file" 2> /dev/null)
        [[ $pid =~ ^[0-9]+$ ]] || continue
        [[ $(cat "/proc/$pid/comm" 2> /dev/null) == mirrorlogd* ]] && kill -KILL "$pid" 2> /dev/null
    done
    # Loop devices backed by a file under our run dir.
    while read -r dev file; do
        [[ $file == "$RUN_DIR"/* ]] && losetup -d "$dev" 2> /dev/null
    done < <(losetup -l -n -O NAME,BACK-FILE 2> /dev/null)
    # The cluster (idempotent; the mldms- prefix belongs to this suite).
    if (( ! SELF_CHECK )) && { [[ -e ${TMPDIR:-/tmp}/netns-cluster-${PREFIX%-}-state ]] ||
                               ip netns list 2> /dev/null | grep -q "^$PREFIX"; }; then
        CLUSTER_PREFIX=$PREFIX timeout 120 "$HERE/netns-cluster.sh" down > /dev/null 2>&1 || true
    fi
    rm -rf -- "$RUN_DIR"
}
trap cleanup EXIT

# In the background so that a signal to this script is acted on at once: it is passed on (timeout
# forwards it to the suite, which then cleans up), then the EXIT trap repeats the cleanup.
timeout -k 10 "$(( ${DEADLINE%.*} + 120 ))" \
    python3 -B "$HERE/multinode_suite.py" --binary "$BIN" --deadline "$DEADLINE" \
    --request-timeout "$REQUEST_TIMEOUT" --tmp-parent "$RUN_DIR" "$@" &
CHILD=$!
trap 'kill -TERM "$CHILD" 2> /dev/null; wait "$CHILD"; exit 130' INT TERM HUP
wait "$CHILD"
rc=$?
(( rc == 124 || rc == 137 )) && echo "FAIL run-multinode.sh: the suite was killed after $(( ${DEADLINE%.*} + 120 ))s"
exit "$rc"
