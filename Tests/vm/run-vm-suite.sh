#!/usr/bin/env bash
# run-vm-suite.sh — mirrorlogd's end-to-end suite against the real kernel.
#
# Boots the Debian kernel (it has dm-mirror and dm-log-userspace; the host's
# kernel has no device-mapper) in QEMU through virtme-ng, starts the daemon
# inside and runs the scenarios of Tests/vm/guest-suite.sh.
#
#   Tests/vm/run-vm-suite.sh [--kernel-log] [--keep] [SCENARIO...]
#
#   MIRRORLOGD_BIN   daemon binary (default <repo>/.build/release/mirrorlogd);
#                    build it first, this script does not.
#   VM_TIMEOUT       seconds for the whole VM run (default 4800)
#   --kernel-log     run the scenarios with the kernel's own core/disk logs and
#                    no daemon: checks that the checks are right
#   --keep           keep the results directory even when everything passed
#   SCENARIO         names or prefixes: a, b-resync, d-suspend-reload-disk,
#                    a-nosync-clustered, n-restart-latency-clustered-core, ...
#
# Prints "PASS <name>" / "FAIL <name>: <reason>" per scenario, scenario n's
# "LATENCY ..." lines, and then "N passed, M failed"; exits non-zero on any
# failure or if the VM did not finish. Progress goes to stderr.

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=Tests/vm/common.sh
source "$HERE/common.sh"

MODE=userspace KEEP=0
SCEN=()
while (( $# )); do
    case $1 in
        --kernel-log) MODE=kernel; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option: $1" >&2; exit 2 ;;
        *) SCEN+=("$1"); shift ;;
    esac
done

if [[ $MODE == userspace ]]; then
    resolve_daemon_binary "$REPO" || exit 2
fi
require_vm_tools || exit 2

VM_TIMEOUT=${VM_TIMEOUT:-4800}
RES=$(mktemp -d "${TMPDIR:-/tmp}/mirrorlogd-vm.XXXXXX")
chmod 755 "$RES"
FAILED=1

finish() {
    # nothing big is meant to be here (backing files live in the guest's tmpfs),
    # but never leave images behind
    find "$RES" -type f \( -name '*.img' -o -size +20M \) -delete 2>/dev/null || true
    if (( FAILED == 0 && KEEP == 0 )); then
        rm -rf "$RES"
    else
        echo "logs kept in $RES (results.txt, mirrorlogd.log, guest-output.log, dmesg.txt)" >&2
    fi
}
trap finish EXIT

q() { printf '%q' "$1"; }
cmd="bash $(q "$HERE/guest-suite.sh") --results $(q "$RES") --mode $MODE"
[[ $MODE == userspace ]] && cmd+=" --bin $(q "$BIN")"
for s in "${SCEN[@]+"${SCEN[@]}"}"; do cmd+=" $(q "$s")"; done

echo "booting $KIMG under TCG (mode $MODE, limit ${VM_TIMEOUT}s); results in $RES" >&2
t0=$SECONDS
set +e
vm_exec "$RES" "$VM_TIMEOUT" "$cmd" | sed -u 's/\r$//' | tee "$RES/guest-output.log" |
    grep --line-buffered '^\[suite\]' >&2
vm_rc=${PIPESTATUS[0]}
set -e
elapsed=$((SECONDS - t0))

results=$RES/results.txt
declare -a plan=()
declare -A outcome=()
if [[ -f $results ]]; then
    while IFS= read -r line; do
        case $line in
            "PLAN "*) plan+=("${line#PLAN }") ;;
            "PASS "*) n=${line#PASS }; outcome[$n]=$line ;;
            "FAIL "*) n=${line#FAIL }; n=${n%%:*}; outcome[$n]=$line ;;
        esac
    done < "$results"
fi
done_marker=0
[[ -f $results ]] && grep -qx DONE "$results" && done_marker=1

why_missing="no result"
if (( vm_rc == 124 || vm_rc == 137 )); then
    why_missing="no result: the VM was stopped after ${VM_TIMEOUT}s"
elif (( done_marker == 0 )); then
    why_missing="no result: the guest did not finish (vng exit $vm_rc)"
fi

pass=0 fail=0
if (( ${#plan[@]} == 0 )); then
    echo "FAIL vm: the guest suite did not start (vng exit $vm_rc)"
    fail=1
fi
for n in "${plan[@]+"${plan[@]}"}"; do
    line=${outcome[$n]:-"FAIL $n: $why_missing"}
    echo "$line"
    if [[ $line == PASS* ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done
# scenario n's restart latencies
[[ -f $results ]] && grep '^LATENCY ' "$results" || true   # none when n is not in the selection
if (( ${#plan[@]} > 0 && done_marker == 0 && fail == 0 )); then
    echo "FAIL vm: the guest did not finish (vng exit $vm_rc)"
    fail=$((fail + 1))
fi

if (( fail > 0 )); then
    {
        echo "---- tail of the guest output ($RES/guest-output.log) ----"
        tail -n 40 "$RES/guest-output.log" 2>/dev/null || true
        if [[ -f $RES/mirrorlogd.log ]]; then
            echo "---- tail of the daemon log ($RES/mirrorlogd.log) ----"
            tail -n 40 "$RES/mirrorlogd.log"
        fi
    } >&2
fi
echo "suite took ${elapsed}s" >&2
echo "$pass passed, $fail failed"
(( fail == 0 )) && FAILED=0
exit $(( fail > 0 ? 1 : 0 ))
