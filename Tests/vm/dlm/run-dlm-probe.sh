#!/usr/bin/env bash
# run-dlm-probe.sh — boots ONE virtme-ng guest (the Debian kernel under QEMU/TCG,
# the host's root filesystem read-only) and runs guest-dlm-probe.sh in it:
# single-node corosync + dlm_controld, then dlm_probe.py scenarios against the
# real kernel DLM (persistent locks, orphans, adoption, lockspace create/release).
#
#   Tests/vm/dlm/run-dlm-probe.sh [--out DIR] [--keep]
#
#   --out DIR      copy the guest's files (results.txt, guest.log, *.out, ...) to DIR
#   --keep         keep the temporary results directory (always kept on failure)
#   DLM_PROBE_TIMEOUT  seconds for the whole VM run (default 720)
#
# Prints results.txt; exits 0 when the guest got the DLM running and ran every
# scenario (the outcomes are observations, see FINDINGS.md), 1 otherwise, 2 when
# it cannot run. Needs root, vng, qemu-system-x86_64, the Debian kernel with
# dlm.ko, corosync and dlm-controld (scripts/install-deps.sh).

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=Tests/vm/common.sh
source "$HERE/../common.sh"

OUTDIR="" KEEP=0
while (( $# )); do
    case $1 in
        --out) OUTDIR=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

require_vm_tools || exit 2
missing=()
for c in corosync corosync-quorumtool dlm_controld dlm_tool python3; do
    command -v "$c" > /dev/null || missing+=("$c")
done
[[ -e /usr/lib/x86_64-linux-gnu/libdlm_lt.so.3 ]] || missing+=("libdlm_lt.so.3 (libdlm3)")
compgen -G "/lib/modules/$KVER/kernel/fs/dlm/dlm.ko*" > /dev/null || missing+=("dlm.ko for $KVER")
if (( ${#missing[@]} )); then
    echo "error: missing: ${missing[*]} (apt-get install corosync dlm-controld libdlm3)" >&2
    exit 2
fi

LIMIT=${DLM_PROBE_TIMEOUT:-720}
RES=$(mktemp -d "${TMPDIR:-/tmp}/mirrorlogd-dlm.XXXXXX")
chmod 755 "$RES"
VMPID="" OK=0

# our_qemus: qemu processes whose command line names our unique results dir.
our_qemus() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null) == qemu-system* ]] || continue
        tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "$RES" && echo "${p#/proc/}"
    done
    return 0
}

cleanup() {
    local p i
    trap - EXIT INT TERM HUP
    for i in 1 2 3 4 5; do
        p=$(our_qemus)
        [[ -z $p ]] && break
        # shellcheck disable=SC2086
        kill -KILL $p 2>/dev/null || true
        sleep 0.5
    done
    [[ -n $(our_qemus) ]] && echo "warning: qemu processes $(our_qemus) survived SIGKILL" >&2
    if [[ -n $VMPID ]]; then kill -KILL "$VMPID" 2>/dev/null || true; wait "$VMPID" 2>/dev/null || true; fi
    if [[ -n $OUTDIR ]]; then
        mkdir -p "$OUTDIR" && cp -a "$RES"/. "$OUTDIR"/ && echo "guest files copied to $OUTDIR" >&2
    fi
    if (( OK == 1 && KEEP == 0 )); then
        rm -rf -- "$RES"
    else
        echo "results kept in $RES" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "booting $KIMG under TCG (limit ${LIMIT}s); results in $RES" >&2
cmd="bash $(printf '%q' "$HERE/guest-dlm-probe.sh") --out $(printf '%q' "$RES")"
t0=$SECONDS
set +e
# timeout signals its whole process group on expiry (vng and its qemu); the
# trap above kills any qemu left that names $RES.
timeout -k 20 "$LIMIT" vng --run "$KIMG" --user root --disable-kvm \
    --memory "${VM_MEMORY:-2G}" --cpus "${VM_CPUS:-2}" \
    --rwdir "$RES" --exec "$cmd" < /dev/null > "$RES/console.log" 2>&1 &
VMPID=$!
wait "$VMPID"
rc=$?
VMPID=""
set -e
echo "vng exited $rc after $((SECONDS - t0))s" >&2

if [[ -f $RES/results.txt ]]; then
    cat "$RES/results.txt"
else
    echo "no results.txt; tail of the console:" >&2
    tail -n 30 "$RES/console.log" >&2
fi
if (( rc == 124 || rc == 137 )); then
    echo "FAIL: the VM was stopped after ${LIMIT}s" >&2
    exit 1
fi
if grep -qx SETUP_OK "$RES/results.txt" 2>/dev/null && grep -qx DONE "$RES/results.txt"; then
    OK=1
    echo "PASS dlm-probe ($((SECONDS - t0))s)" >&2
    exit 0
fi
echo "FAIL: the guest did not finish (see $RES/guest.log)" >&2
tail -n 20 "$RES/guest.log" >&2 2>/dev/null || true
exit 1
