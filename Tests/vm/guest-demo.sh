#!/bin/bash
# shellcheck disable=SC2154  # <var>_file and DEV_<name> are set through printf -v
# guest-demo.sh — the demo, INSIDE the virtme-ng guest (started by scripts/demo.sh).
#
#   guest-demo.sh --results DIR --bin PATH
#
# A two-leg mirror with a `disk` log served by mirrorlogd, created with the
# default (full) resync; data written while it syncs; sync progress; checks;
# teardown. Writes DIR/demo-ok on success and the daemon log to DIR.

set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=Tests/vm/lib.sh
source "$HERE/lib.sh"

RES="" BIN=""
while (( $# )); do
    case $1 in
        --results) RES=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ -d $RES && -x $BIN ]] || { echo "usage: guest-demo.sh --results DIR --bin PATH" >&2; exit 2; }

WORK=/dev/shm/mlt-demo
DLOG=$RES/mirrorlogd.log
NAME=demo-mirror
LEG_MB=128
LEN=$((LEG_MB * 2048))
REGION=1024
DPID="" LOOPS=()

step() { printf '\n== %s\n' "$*"; }
show() { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed '/^$/d; s/^/     /'; return "${PIPESTATUS[0]}"; }
die() { printf '\nDEMO FAILED: %s\n' "$*"; exit 1; }

teardown() {
    set_throttle 100
    if dmsetup info "$NAME" > /dev/null 2>&1; then
        timeout -k 5 60 dmsetup remove --retry "$NAME" > /dev/null 2>&1 || echo "   (could not remove $NAME)"
    fi
    local l
    for l in "${LOOPS[@]+"${LOOPS[@]}"}"; do losetup -d "$l" 2>/dev/null; done
    if [[ -n $DPID ]] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID"
        for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$DPID" 2>/dev/null && kill -KILL "$DPID"
    fi
    rm -rf "$WORK"
}
trap teardown EXIT

step "Guest kernel $(uname -r): loading dm-mod, dm-mirror, dm-log-userspace, loop"
load_modules || die "module load failed"
dmsetup targets | sed 's/^/     /'

step "Backing devices (loop devices over tmpfs files)"
mkdir -p "$WORK"
dd if=/dev/urandom of="$WORK/data" bs=1M count=32 status=none
dd if=/dev/urandom of="$WORK/leg1" bs=1M count=$LEG_MB status=none   # the "old" disk, full of data
truncate -s ${LEG_MB}M "$WORK/leg2"                                   # the new, empty disk
truncate -s 1M "$WORK/log"
for f in leg1 leg2 log; do
    dev=$(losetup -f --show "$WORK/$f") || die "losetup $f"
    LOOPS+=("$dev")
    printf -v "DEV_$f" '%s' "$dev"
done
echo "   leg 1: $DEV_leg1 ($LEG_MB MiB of random data)"
echo "   leg 2: $DEV_leg2 ($LEG_MB MiB of zeros)"
echo "   log:   $DEV_log (1 MiB disk log)"

step "Starting mirrorlogd in the foreground (its log: mirrorlogd.log)"
"$BIN" -f < /dev/null > >(exec cat >> "$DLOG") 2>&1 &
DPID=$!
for _ in $(seq 100); do
    netlink_dm_listener && break
    kill -0 "$DPID" 2>/dev/null || die "mirrorlogd exited: $(tail -n 5 "$DLOG")"
    sleep 0.2
done
echo "   mirrorlogd $("$BIN" --version) running, pid $DPID"

step "Creating the mirror (userspace log, disk type, default sync = full resync)"
# dm-mirror copies fast under tmpfs; slow its resync down so it can be watched.
set_throttle 4
echo "   (dm-mirror's raid1_resync_throttle set to 4 % for the demo, so the progress is visible)"
mirror_table TABLE userspace disk "demo-$(date +%s)" $LEN $REGION "" "$DEV_leg1" "$DEV_leg2" "$DEV_log"
show dmsetup create "$NAME" --table "$TABLE" || die "dmsetup create failed"
show dmsetup table "$NAME"
show dmsetup status "$NAME"

step "Writing 32 MiB at offset 64 MiB (O_DIRECT, in the background) while it resyncs"
echo "   $ dd if=data of=/dev/mapper/$NAME bs=1M seek=64 oflag=direct &"
dd if="$WORK/data" of="/dev/mapper/$NAME" bs=1M seek=64 oflag=direct conv=notrunc status=none &
WPID=$!

CTL=$(dirname "$BIN")/mirrorlogctl
step "The daemon's own view while it resyncs: mirrorlogctl status (exit 1: degraded, resyncing)"
if [[ -x $CTL ]]; then
    echo "   $ mirrorlogctl status"
    "$CTL" status | sed 's/^/   /'
    echo "   (exit ${PIPESTATUS[0]})"
fi

step "Resync progress (dmsetup status: legs, in-sync regions / all regions, health, log)"
start=$SECONDS
writing=1
while (( SECONDS - start < 240 )); do
    if (( writing )) && ! kill -0 "$WPID" 2>/dev/null; then
        wait "$WPID" || die "the write failed"
        writing=0
        echo "          (write finished)"
    fi
    st=$(dmsetup status "$NAME")
    printf '   %3ds  %s%s\n' $((SECONDS - start)) "$st" "$( ((writing)) && echo '   [writing]')"
    (( writing == 0 )) && is_in_sync "$NAME" && break
    sleep 2
done
(( writing == 0 )) && is_in_sync "$NAME" || die "not in sync (or write not done) after 240 s"
set_throttle 100

step "Final status"
show dmsetup status "$NAME"
if [[ -x $CTL ]]; then
    echo "   $ mirrorlogctl status"
    "$CTL" status | sed 's/^/   /'
    echo "   (exit ${PIPESTATUS[0]}: healthy)"
fi
show dmsetup info "$NAME"

step "Checks"
cmp <(dd if="$WORK/data" bs=1M status=none) \
    <(dd if="/dev/mapper/$NAME" bs=1M skip=64 count=32 iflag=direct status=none) ||
    die "read-back differs from what was written"
echo "   read-back of the written 32 MiB: identical"
cmp "$WORK/leg1" "$WORK/leg2" || die "the legs differ"
echo "   leg 1 and leg 2 ($LEG_MB MiB each): identical"

step "Teardown"
show dmsetup remove "$NAME" || die "remove failed"
teardown
trap - EXIT
echo "   mirror removed, loop devices detached, mirrorlogd stopped"
echo
echo "---- mirrorlogd log ----"
sed 's/^/   /' "$DLOG"
touch "$RES/demo-ok"
