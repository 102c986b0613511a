#!/bin/bash
# shellcheck disable=SC2154  # <var>_file and DEV_<name> are set through printf -v
# guest-suite.sh — the real-kernel end-to-end scenarios for mirrorlogd.
# Runs INSIDE the virtme-ng guest (started by run-vm-suite.sh), as root.
#
#   guest-suite.sh --results DIR [--bin PATH] [--mode userspace|kernel] [SCENARIO...]
#
# --results  a directory shared with the host (vng --rwdir): results.txt,
#            mirrorlogd.log and the guest's notes are written there.
# --mode     userspace (default): mirrors use the `userspace` log type served by
#            the daemon at --bin. kernel: the same scenarios with the kernel's own
#            core/disk log and no daemon (checks the checks; f/g's daemon parts
#            are skipped there).
# SCENARIO   names or prefixes (a, a-nosync, a-nosync-core, ...); default all.
#
# results.txt lines: "PLAN <name>" for each selected scenario, then
# "PASS <name>" or "FAIL <name>: <reason>" and "TIME <name> <seconds>",
# and "DONE" at the end.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=Tests/vm/lib.sh
source "$HERE/lib.sh"

RES="" BIN="" MODE=userspace
SELECT=()
while (( $# )); do
    case $1 in
        --results) RES=$2; shift 2 ;;
        --bin) BIN=$2; shift 2 ;;
        --mode) MODE=$2; shift 2 ;;
        -*) echo "unknown option $1" >&2; exit 2 ;;
        *) SELECT+=("$1"); shift ;;
    esac
done
[[ -n $RES && -d $RES ]] || { echo "--results DIR is required" >&2; exit 2; }
[[ $MODE == userspace || $MODE == kernel ]] || { echo "bad --mode $MODE" >&2; exit 2; }
if [[ $MODE == userspace && ! -x $BIN ]]; then
    echo "daemon binary '$BIN' is missing or not executable" >&2; exit 2
fi

RESULTS=$RES/results.txt
DLOG=$RES/mirrorlogd.log
WORK=/dev/shm/mlt            # backing files (tmpfs; loop over tmpfs is fine)
STATE=$WORK/state            # per-scenario bookkeeping shared with subshells
RAND_FILL=$WORK/rand-fill    # 64 MiB random bytes for pre-filling legs
RAND_DATA=$WORK/rand-data    # 64 MiB other random bytes written through mirrors
MB=$((1024 * 1024))
SCEN_LIMIT=${SCEN_LIMIT:-420} # seconds per scenario (watchdog)
: > "$RESULTS"

# ---------------------------------------------------------------- daemon ----

daemon_pid() { cat "$STATE/daemon.pid" 2>/dev/null; }
daemon_alive() { local p; p=$(daemon_pid); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

# start_daemon: starts `mirrorlogd -f --debug`, stderr+stdout appended to the
# shared log (through cat so that a burst of debug lines becomes few writes on
# the 9p share), and waits (bounded) until it listens on the DM connector group.
start_daemon() {
    [[ $MODE == userspace ]] || return 0
    printf '=== mirrorlogd started %s ===\n' "$(date +%T.%N)" >> "$DLOG"
    "$BIN" -f --debug < /dev/null > >(exec cat >> "$DLOG") 2>&1 &
    local pid=$!
    disown "$pid" 2>/dev/null   # no "Killed" job notice for scenario f
    echo "$pid" > "$STATE/daemon.pid"
    local start=$SECONDS
    while (( SECONDS - start < 20 )); do
        kill -0 "$pid" 2>/dev/null || { say "daemon (pid $pid) exited at start"; return 1; }
        netlink_dm_listener && { say "daemon pid $pid listening"; return 0; }
        sleep 0.2
    done
    say "daemon pid $pid alive but no connector socket in group 7 after 20 s; going on"
    return 0
}

stop_daemon() {
    [[ $MODE == userspace ]] || return 0
    local pid i
    pid=$(daemon_pid)
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "daemon did not stop on SIGTERM within 5 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$STATE/daemon.pid"
}

# ------------------------------------------------------- scenario helpers ----
# These run inside the scenario subshell; fail() ends that subshell.

REASON=$STATE/reason
fail() {
    [[ -s $REASON ]] || printf '%s\n' "$*" > "$REASON"
    say "  check failed: $*"
    exit 1
}
note() { say "  $*"; }

dms() { timeout -k 5 60 dmsetup "$@"; }
st() { dms status "$1" 2>&1 || true; }   # for messages: never fails
# must WHAT CMD...: runs CMD, fails the scenario with its output on error.
must() {
    local what=$1 out
    shift
    out=$("$@" 2>&1) || fail "$what failed: $(tr '\n' ' ' <<< "$out")"
}

# new_leg VAR NAME SIZE_MB FILL: FILL is zero or random (from RAND_FILL).
# Creates the backing file in tmpfs and a loop device; VAR gets /dev/loopN,
# VAR_file the backing file.
new_leg() {
    local var=$1 name=$2 size=$3 fill=$4 f=$WORK/$2 dev
    rm -f "$f"
    case $fill in
        zero) truncate -s "${size}M" "$f" || fail "truncate $f" ;;
        random) dd if="$RAND_FILL" of="$f" bs=1M count="$size" status=none || fail "fill $f" ;;
        *) fail "bad fill $fill" ;;
    esac
    dev=$(losetup -f --show "$f") || fail "losetup -f $f failed"
    echo "$dev" >> "$STATE/loops"
    printf -v "$var" '%s' "$dev"
    printf -v "${var}_file" '%s' "$f"
}

# majmin DEV: prints MAJ:MIN of a block device.
majmin() { printf '%d:%d' "0x$(stat -c %t "$1")" "0x$(stat -c %T "$1")"; }

# create NAME TABLE: dmsetup create that must succeed.
create() {
    local out
    note "create $1: $2"
    echo "$1" >> "$STATE/dms"
    out=$(dms create "$1" --table "$2" 2>&1) || fail "dmsetup create $1 failed: $out"
}

# write_data DM SRC_MB DST_MB COUNT_MB [BS]: O_DIRECT write from RAND_DATA.
write_data() {
    local out
    out=$(dd if="$RAND_DATA" of="/dev/mapper/$1" bs="${5:-1M}" iflag=skip_bytes,count_bytes \
        skip=$(($2 * MB)) seek=$(($3 * MB)) oflag=direct,seek_bytes count=$(($4 * MB)) \
        conv=notrunc status=none 2>&1) || fail "write to $1 failed: $out"
}

# bg_write VAR DM SRC_MB DST_MB COUNT_MB [BS]: same in the background; VAR gets
# the pid; the exit code lands in $STATE/rc.<pid>.
bg_write() {
    local var=$1
    shift
    (
        dd if="$RAND_DATA" of="/dev/mapper/$1" bs="${5:-1M}" iflag=skip_bytes,count_bytes \
            skip=$(($2 * MB)) seek=$(($3 * MB)) oflag=direct,seek_bytes count=$(($4 * MB)) \
            conv=notrunc status=none 2> "$STATE/err.$BASHPID"
        echo $? > "$STATE/rc.$BASHPID"
    ) &
    echo $! >> "$STATE/pids"
    printf -v "$var" '%s' "$!"
}

# wait_bg PID TIMEOUT_S WHAT: bounded wait for a bg_write; fails on error.
wait_bg() {
    local pid=$1 limit=$2 what=$3 start=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        (( SECONDS - start > limit )) && fail "$what: still running after ${limit}s"
        sleep 0.2
    done
    local rc
    rc=$(cat "$STATE/rc.$pid" 2>/dev/null)
    [[ $rc == 0 ]] || fail "$what: dd exited ${rc:-?}: $(cat "$STATE/err.$pid" 2>/dev/null)"
}

# check_readback DM SRC_MB DST_MB COUNT_MB: O_DIRECT read of the mirror equals
# what was written.
check_readback() {
    local out
    out=$(cmp <(dd if="$RAND_DATA" bs=1M iflag=skip_bytes,count_bytes skip=$(($2 * MB)) \
                  count=$(($4 * MB)) status=none) \
              <(dd if="/dev/mapper/$1" bs=1M iflag=direct,skip_bytes,count_bytes \
                  skip=$(($3 * MB)) count=$(($4 * MB)) status=none) 2>&1) ||
        fail "read-back of $1 [$3 MiB +$4 MiB] differs from the data written: $out"
}

# check_legs FILE1 FILE2 [SKIP_MB COUNT_MB]: the legs' backing files are
# identical (loop devices without direct I/O write through the tmpfs page
# cache, so the files show what reached the legs).
check_legs() {
    local a=$1 b=$2 out
    if (( $# >= 4 )); then
        out=$(cmp -i $(($3 * MB)) -n $(($4 * MB)) "$a" "$b" 2>&1) ||
            fail "legs differ in [$3 MiB +$4 MiB]: $out"
    else
        out=$(cmp "$a" "$b" 2>&1) || fail "legs differ: $out"
    fi
}

# check_file_is_fill FILE COUNT_MB: the leg still holds the pre-fill (random)
# bytes (a resync in the wrong direction would have zeroed it).
check_file_is_fill() {
    local out
    out=$(cmp -n $(($2 * MB)) "$RAND_FILL" "$1" 2>&1) || fail "primary leg $1 lost its data: $out"
}

# wait_sync_progress NAME LIMIT_S STALL_S: 0 in sync; 1 not within LIMIT_S;
# 2 the in-sync count did not move for STALL_S.
wait_sync_progress() {
    local name=$1 limit=$2 stall=$3 start=$SECONDS last="" since=$SECONDS r
    while (( SECONDS - start <= limit )); do
        is_in_sync "$name" && return 0
        r=$(sync_ratio "$name")
        if [[ $r != "$last" ]]; then last=$r; since=$SECONDS; fi
        (( SECONDS - since >= stall )) && return 2
        sleep 0.5
    done
    return 1
}

check_sync() { # DM TIMEOUT_S
    wait_in_sync "$1" "$2" || fail "$1 not in sync after $2 s: $(st "$1")"
    note "$1 in sync: $(st "$1")"
}

check_health() { # DM: no leg or log marked failed
    local st
    st=$(dms status "$1" 2>&1)
    [[ $st == *COM_FAILURE* ]] && fail "$1 status shows COM_FAILURE: $st"
    awk '$3 == "mirror" { n = $4; h = $(7 + n); if (h !~ /^A+$/) exit 1 }' <<< "$st" ||
        fail "$1 leg health not all A: $st"
    [[ $st == *disk* && $st =~ [[:space:]]D$ ]] && fail "$1 disk log marked failed (D): $st"
    return 0
}

# check_marks_on_disk DM LOGFILE DST_MB COUNT_MB: while a slow write runs
# over [DST, DST+COUNT) MiB, the on-disk log (clean bitmap at byte 1024, one
# bit per region, 1 = clean) must show some region of that range as dirty:
# marks reach the disk before the data is written.
check_marks_on_disk() {
    local name=$1 logf=$2 dst=$3 count=$4 p i seen=0 samples=0
    local first=$((dst * MB / (REGION * 512))) last=$(((dst + count) * MB / (REGION * 512) - 1))
    bg_write p "$name" 48 "$dst" "$count" 16K
    while kill -0 "$p" 2>/dev/null && (( samples < 400 )); do
        samples=$((samples + 1))
        local bytes r=0 b
        read -r -a bytes <<< "$(od -An -v -tu1 -j1024 -N$(((last + 8) / 8)) "$logf" | tr '\n' ' ')"
        for ((i = first; i <= last; i++)); do
            b=${bytes[i / 8]:-255}
            if (( ((b >> (i % 8)) & 1) == 0 )); then seen=1; break; fi
        done
        (( seen )) && break
        sleep 0.05
    done
    wait_bg "$p" 180 "write for the mark check"
    (( seen )) || fail "on-disk log never showed a region of [$dst MiB +$count MiB] (regions $first-$last) dirty during the write ($samples samples): marks not persisted before the data write"
    note "on-disk log showed a dirty region during the write (sample $samples)"
    check_readback "$name" 48 "$dst" "$count"
}

# disk_log VAR NAME: a 1 MiB loop device for a disk log.
disk_log() { new_leg "$1" "$2" 1 zero; }

# The daemon tags its log lines with the uuid's last 8 characters: keep the
# distinctive part at the end.
uid() { printf 'mlt-%s-%s' "$RUNID" "$1"; }

log_size() { stat -c %s "$DLOG" 2>/dev/null || echo 0; }

# daemon_logged SINCE REGEX: the daemon log (after byte SINCE) matches REGEX
# within 5 s.
daemon_logged() {
    local since=$1 re=$2 start=$SECONDS
    while (( SECONDS - start <= 5 )); do
        tail -c +$((since + 1)) "$DLOG" | grep -qiE -- "$re" && return 0
        sleep 0.3
    done
    return 1
}

# ------------------------------------------------------------- scenarios ----
# Each takes KIND (core|disk). Legs are 64 MiB (131072 sectors), region 1024
# sectors (512 KiB) -> 128 regions, unless said otherwise.

LEN=131072
LEG_MB=64
REGION=1024

# a. nosync create, 16 MiB O_DIRECT write, legs identical over it, read-back, N/N.
sc_a() {
    local kind=$1 name=mlt-a-$1 l1 l2 lg="" t
    new_leg l1 "a-$kind-1" $LEG_MB random
    new_leg l2 "a-$kind-2" $LEG_MB zero
    [[ $kind == disk ]] && disk_log lg "a-$kind-log"      # /dev/loopN form
    mirror_table t "$MODE" "$kind" "$(uid "a-$kind")" $LEN $REGION nosync "$l1" "$l2" "$lg"
    create "$name" "$t"
    check_sync "$name" 5
    write_data "$name" 0 8 16
    check_legs "$l1_file" "$l2_file" 8 16
    check_readback "$name" 0 8 16
    check_sync "$name" 5
    [[ $kind == disk ]] && check_marks_on_disk "$name" "$lg_file" 32 8
    check_health "$name"
}

# b. default sync (full resync): leg 1 random, leg 2 zeros; wait N/N; legs
# identical over the whole device and leg 1 still holds its data.
sc_b() {
    local kind=$1 name=mlt-b-$1 l1 l2 lg="" t
    new_leg l1 "b-$kind-1" $LEG_MB random
    new_leg l2 "b-$kind-2" $LEG_MB zero
    if [[ $kind == disk ]]; then
        disk_log lg "b-$kind-log"
        lg=$(majmin "$lg")                               # MAJ:MIN form
    fi
    mirror_table t "$MODE" "$kind" "$(uid "b-$kind")" $LEN $REGION "" "$l1" "$l2" "$lg"
    create "$name" "$t"
    note "right after create: $(st "$name")"
    check_sync "$name" 180
    check_legs "$l1_file" "$l2_file"
    check_file_is_fill "$l1_file" $LEG_MB
    check_health "$name"
}

# c. writes while the full resync runs (resync slowed to 10 % so they overlap).
sc_c() {
    local kind=$1 name=mlt-c-$1 l1 l2 lg="" t p1 p2
    new_leg l1 "c-$kind-1" $LEG_MB random
    new_leg l2 "c-$kind-2" $LEG_MB zero
    [[ $kind == disk ]] && disk_log lg "c-$kind-log"
    set_throttle 10
    mirror_table t "$MODE" "$kind" "$(uid "c-$kind")" $LEN $REGION sync "$l1" "$l2" "$lg"
    create "$name" "$t"
    bg_write p1 "$name" 0 0 8 256K      # where the resync starts
    bg_write p2 "$name" 16 48 12 1M     # where it arrives last
    wait_bg "$p1" 180 "write at 0 MiB"
    wait_bg "$p2" 180 "write at 48 MiB"
    note "writes done; status then: $(st "$name")"
    set_throttle 100
    check_sync "$name" 180
    check_readback "$name" 0 0 8
    check_readback "$name" 16 48 12
    check_legs "$l1_file" "$l2_file"
    check_health "$name"
}

# d. suspend/resume under write load; (disk) remove and re-create with the
# same disk log: in sync at once, no resync; a reload with the same table.
sc_d() {
    local kind=$1 name=mlt-d-$1 l1 l2 lg="" t t2 p i
    new_leg l1 "d-$kind-1" $LEG_MB zero
    new_leg l2 "d-$kind-2" $LEG_MB zero
    [[ $kind == disk ]] && disk_log lg "d-$kind-log"
    mirror_table t "$MODE" "$kind" "$(uid "d-$kind")" $LEN $REGION nosync "$l1" "$l2" "$lg" "" "1 handle_errors"
    create "$name" "$t"
    bg_write p "$name" 0 0 24 16K     # small blocks: long enough to span the cycles
    for i in 1 2 3; do
        sleep 0.5
        kill -0 "$p" 2>/dev/null || note "(write already done before suspend #$i)"
        must "suspend #$i" dms suspend "$name"
        note "suspended #$i: $(dms info -c --noheadings -o attr "$name" 2>&1 || true)"
        sleep 1
        must "resume #$i" dms resume "$name"
    done
    wait_bg "$p" 180 "write under suspend/resume"
    check_readback "$name" 0 0 24
    check_legs "$l1_file" "$l2_file" 0 24
    check_sync "$name" 10

    if [[ $kind == disk ]]; then
        must "remove" dms remove "$name"
        sed -i "/^$name\$/d" "$STATE/dms"
        # a full resync at 1 % throttle takes far longer than 2 s
        set_throttle 1
        mirror_table t2 "$MODE" disk "$(uid "d-$kind")" $LEN $REGION "" "$l1" "$l2" "$(majmin "$lg")" "" "1 handle_errors"
        create "$name" "$t2"
        local first
        first=$(st "$name")
        note "status right after re-create: $first"
        wait_in_sync "$name" 2 ||
            fail "re-created mirror with a clean disk log not in sync within 2 s (first status: $first; now: $(st "$name"))"
        set_throttle 100
        check_legs "$l1_file" "$l2_file"
        check_readback "$name" 0 0 24
        t=$t2
    fi

    # reload with the same table (dm builds a second log instance with the
    # same uuid while the first is live, then destroys the first)
    must "reload with the same table" dms reload "$name" --table "$t"
    must "resume after reload" dms resume "$name"
    note "table after reload: $(dms table "$name" 2>&1 || true)"
    write_data "$name" 30 32 8
    check_readback "$name" 30 32 8
    check_readback "$name" 0 0 24
    check_legs "$l1_file" "$l2_file"
    check_sync "$name" 10
    check_health "$name"
}

# e. integrated_flush tables. core: nosync + writes; disk: full resync with
# writes during it.
sc_e() {
    local kind=$1 name=mlt-e-$1 l1 l2 lg="" t iflush=integrated_flush p
    [[ $MODE == kernel ]] && { iflush=""; note "kernel mode: no integrated_flush (kernel log)"; }
    if [[ $kind == core ]]; then
        new_leg l1 "e-$kind-1" $LEG_MB random
        new_leg l2 "e-$kind-2" $LEG_MB zero
        mirror_table t "$MODE" core "$(uid "e-$kind")" $LEN $REGION nosync "$l1" "$l2" "" "$iflush"
        create "$name" "$t"
        write_data "$name" 4 8 16 64K
        bg_write p "$name" 24 40 8 1M
        write_data "$name" 40 28 4 128K
        wait_bg "$p" 120 "parallel write"
        check_readback "$name" 4 8 16
        check_readback "$name" 24 40 8
        check_readback "$name" 40 28 4
        check_legs "$l1_file" "$l2_file" 8 16
        check_legs "$l1_file" "$l2_file" 28 4
        check_legs "$l1_file" "$l2_file" 40 8
        check_sync "$name" 5
    else
        new_leg l1 "e-$kind-1" $LEG_MB random
        new_leg l2 "e-$kind-2" $LEG_MB zero
        disk_log lg "e-$kind-log"
        set_throttle 20
        mirror_table t "$MODE" disk "$(uid "e-$kind")" $LEN $REGION "" "$l1" "$l2" "$(majmin "$lg")" "$iflush"
        create "$name" "$t"
        write_data "$name" 4 40 16 256K
        set_throttle 100
        check_sync "$name" 180
        check_readback "$name" 4 40 16
        check_marks_on_disk "$name" "$lg_file" 8 8     # marks ride in the FLUSH payload
        check_legs "$l1_file" "$l2_file"
    fi
    check_health "$name"
}

# f. kill -9 the daemon during a write, restart it: the kernel reconnects, the
# write completes, the data is right and the mirror gets in sync. Core log:
# created nosync over legs that differ, so only a full resync after the
# restart makes the legs identical everywhere.
sc_f() {
    local kind=$1 name=mlt-f-$1 l1 l2 lg="" t p old since i
    new_leg l1 "f-$kind-1" $LEG_MB random
    new_leg l2 "f-$kind-2" $LEG_MB zero
    [[ $kind == disk ]] && disk_log lg "f-$kind-log"
    mirror_table t "$MODE" "$kind" "$(uid "f-$kind")" $LEN $REGION nosync "$l1" "$l2" "$lg"
    create "$name" "$t"
    check_sync "$name" 5
    # small blocks: every one needs log requests, so the write is still
    # running when the daemon dies
    bg_write p "$name" 8 16 16 16K
    for ((i = 0; i < 10; i++)); do sleep 0.1; done
    kill -0 "$p" 2>/dev/null || fail "(test) the write finished before the kill; nothing exercised"
    old=$(daemon_pid)
    note "kill -9 daemon pid $old while the write runs"
    kill -KILL "$old" || fail "could not kill the daemon"
    sleep 3
    kill -0 "$p" 2>/dev/null && note "write blocked while the daemon is gone (as expected)"
    since=$(log_size)
    start_daemon || fail "daemon did not restart"
    wait_bg "$p" 180 "write across the daemon restart"
    note "write completed after the restart; status: $(st "$name")"
    check_readback "$name" 8 16 16
    local r=0
    wait_sync_progress "$name" 180 30 || r=$?
    if (( r != 0 )); then
        local before works
        before=$(st "$name")
        works=$(tail -c +$((since + 1)) "$DLOG" | grep -c GET_RESYNC_WORK || true)
        # diagnosis only: does a suspend/resume (which resets the kernel's
        # cached in_sync_hint) get the resync going?
        { dms suspend "$name" && dms resume "$name"; } || true
        local after
        after="still not in sync 60 s after a suspend/resume: $(st "$name")"
        wait_in_sync "$name" 60 && after="in sync after a suspend/resume: $(st "$name")"
        fail "no progress to sync after the daemon restart ($( ((r == 2)) && echo 'stalled 30 s' || echo 'timed out')): $before; GET_RESYNC_WORK requests since the restart: $works; $after"
    fi
    note "$name in sync: $(st "$name")"
    check_readback "$name" 8 16 16
    if [[ $kind == core ]]; then
        check_legs "$l1_file" "$l2_file"      # full resync after restart
    else
        check_legs "$l1_file" "$l2_file" 16 16
    fi
    check_health "$name"
}

# g. bad tables are refused (and the daemon says why); a mirror created
# before keeps working.
sc_g() {
    local kind=$1 good=mlt-g-good-$1 l1 l2 l3 l4 lg="" t i
    new_leg l1 "g-$kind-1" 32 zero
    new_leg l2 "g-$kind-2" 32 zero
    mirror_table t "$MODE" core "$(uid "g-good-$kind")" 65536 $REGION nosync "$l1" "$l2"
    create "$good" "$t"
    write_data "$good" 0 0 4
    check_readback "$good" 0 0 4
    new_leg l3 "g-$kind-3" 32 zero
    new_leg l4 "g-$kind-4" 32 zero
    [[ $kind == disk ]] && disk_log lg "g-$kind-log"
    local legs="2 $l3 0 $l4 0" u
    u=$(uid "g-bad-$kind")
    # "label|table tail after 'mirror '|regex the daemon log must match"
    local cases=()
    if [[ $MODE == userspace ]]; then
        if [[ $kind == core ]]; then
            cases+=("unknown log type|userspace 3 $u bogus 1024 $legs|bogus"
                "region size 0|userspace 4 $u core 0 nosync $legs|region"
                "no region size|userspace 3 $u core nosync $legs|region|nosync|argument"
                "extra argument|userspace 5 $u core 1024 nosync frobnicate $legs|frobnicate"
                "region size not a number|userspace 3 $u core 12x4 $legs|12x4|region")
        else
            cases+=("log device does not exist|userspace 4 $u disk /dev/nonexistent 1024 $legs|nonexistent"
                "log device 259:999|userspace 4 $u disk 259:999 1024 $legs|259:999"
                "no region size|userspace 3 $u disk $lg $legs|region|argument"
                "region size 0|userspace 4 $u disk $lg 0 $legs|region"
                "extra argument|userspace 6 $u disk $lg 1024 nosync frobnicate $legs|frobnicate")
        fi
    else
        if [[ $kind == core ]]; then
            cases+=("unknown log type|bogus 1 1024 $legs|"
                "region size 0|core 2 0 nosync $legs|"
                "no region size|core 1 nosync $legs|"
                "extra argument|core 3 1024 nosync frobnicate $legs|")
        else
            cases+=("log device does not exist|disk 2 /dev/nonexistent 1024 $legs|"
                "log device 259:999|disk 2 259:999 1024 $legs|"
                "region size 0|disk 2 $lg 0 $legs|")
        fi
    fi
    local c label rest tail re since out
    i=0
    for c in "${cases[@]}"; do
        i=$((i + 1))
        label=${c%%|*}; rest=${c#*|}; tail=${rest%%|*}; re=${rest#*|}
        since=$(log_size)
        note "bad table ($label): mirror $tail"
        if out=$(dms create "mlt-g-bad$i" --table "0 65536 mirror $tail" 2>&1); then
            echo "mlt-g-bad$i" >> "$STATE/dms"
            fail "bad table ($label) was accepted"
        fi
        if dms info "mlt-g-bad$i" > /dev/null 2>&1; then
            note "(left-over device mlt-g-bad$i removed)"
            dms remove "mlt-g-bad$i" > /dev/null 2>&1 || true
        fi
        if [[ $MODE == userspace && -n $re ]]; then
            daemon_logged "$since" "$re" ||
                fail "daemon log has no reason for the refused table ($label), wanted /$re/; new log lines: $(tail -c +$((since + 1)) "$DLOG" | tail -n 5 | tr '\n' '|')"
            note "  daemon said: $(tail -c +$((since + 1)) "$DLOG" | grep -iE -- "$re" | head -n 1)"
        fi
    done
    [[ $MODE == kernel ]] || daemon_alive || fail "daemon died during the bad tables"
    write_data "$good" 8 8 8
    check_readback "$good" 0 0 4
    check_readback "$good" 8 8 8
    check_legs "$l1_file" "$l2_file" 0 16
    check_sync "$good" 5
    check_health "$good"
}

# h. 8 mirrors at once (4 core, 4 disk; disk logs as /dev/loopN and MAJ:MIN),
# half of them resyncing; parallel writes; all correct, identical, N/N.
sc_h() {
    local n=8 i kind name t lg syncarg fill feat
    local -a names l1f l2f pids
    for ((i = 0; i < n; i++)); do
        local a b c=""
        kind=core; (( i % 2 )) && kind=disk
        if (( i < 4 )); then syncarg=nosync; fill=zero; else syncarg=""; fill=random; fi
        new_leg a "h-$i-1" 32 "$fill"
        new_leg b "h-$i-2" 32 zero
        if [[ $kind == disk ]]; then
            disk_log c "h-$i-log"
            (( i % 4 == 3 )) && c=$(majmin "$c")
        fi
        feat=""; (( i % 3 == 0 )) && feat="1 handle_errors"
        name=mlt-h-$i
        mirror_table t "$MODE" "$kind" "$(uid "h-mirror$i")" 65536 512 "$syncarg" "$a" "$b" "$c" "" "$feat"
        create "$name" "$t"
        names[i]=$name; l1f[i]=$a_file; l2f[i]=$b_file
    done
    for ((i = 0; i < n; i++)); do
        bg_write "pids[$i]" "${names[i]}" $((i * 4)) 8 8 256K
    done
    for ((i = 0; i < n; i++)); do
        wait_bg "${pids[i]}" 300 "write to ${names[i]}"
    done
    for ((i = 0; i < n; i++)); do check_sync "${names[i]}" 240; done
    for ((i = 0; i < n; i++)); do
        check_readback "${names[i]}" $((i * 4)) 8 8
        check_legs "${l1f[i]}" "${l2f[i]}"
        check_health "${names[i]}"
    done
}

# i. the operator's view of the daemon: a second instance is refused by the
# pidfile lock; SIGUSR1 dumps the state; one SIGTERM with an active log is
# refused and the daemon keeps serving; a second SIGTERM within 10 s exits;
# a restarted daemon takes the mirror back (reconnect, resync).
sc_i() {
    local kind=$1 name=mlt-i-$1 l1 l2 lg="" t since pid rc i
    new_leg l1 "i-$kind-1" 32 random
    new_leg l2 "i-$kind-2" 32 zero
    [[ $kind == disk ]] && disk_log lg "i-$kind-log"
    mirror_table t "$MODE" "$kind" "$(uid "i-$kind")" 65536 $REGION nosync "$l1" "$l2" "$lg"
    create "$name" "$t"
    check_sync "$name" 5
    pid=$(daemon_pid)

    rc=0
    timeout -k 5 20 "$BIN" -f > "$WORK/second-instance.log" 2>&1 || rc=$?
    (( rc != 0 )) || fail "a second mirrorlogd started although the first holds the pidfile"
    grep -q "another mirrorlogd holds" "$WORK/second-instance.log" ||
        fail "second instance exited ($rc) without saying why: $(head -c 300 "$WORK/second-instance.log")"
    note "second instance refused: $(head -n 1 "$WORK/second-instance.log")"

    since=$(log_size)
    kill -USR1 "$pid"
    daemon_logged "$since" "state dump: 1 log" || fail "SIGUSR1 did not dump the state"
    daemon_logged "$since" "in_sync=64/64" || fail "SIGUSR1 dump lacks the log line (in_sync=64/64)"

    since=$(log_size)
    kill -TERM "$pid"
    daemon_logged "$since" "refusing to exit while 1 log" || fail "first SIGTERM with an active log was not refused"
    sleep 1
    kill -0 "$pid" 2>/dev/null || fail "daemon exited on the first SIGTERM with an active log"
    write_data "$name" 0 4 2        # small: the second SIGTERM must come within 10 s
    check_readback "$name" 0 4 2
    note "still serving after the refused SIGTERM"

    since=$(log_size)
    kill -TERM "$pid"
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && fail "daemon did not exit on a second SIGTERM within 10 s"
    daemon_logged "$since" "again: exiting with 1 active log" || fail "forced exit not logged"
    note "second SIGTERM: exited"

    start_daemon || fail "daemon did not restart"
    write_data "$name" 8 16 8
    check_readback "$name" 8 16 8
    wait_in_sync "$name" 180 || fail "not back in sync after the restart: $(st "$name")"
    check_readback "$name" 0 4 2
    if [[ $kind == core ]]; then
        check_legs "$l1_file" "$l2_file"      # a core log resyncs fully
    else
        check_legs "$l1_file" "$l2_file" 4 2
        check_legs "$l1_file" "$l2_file" 16 8
    fi
    check_health "$name"
}

# j. log device failure (disk logs, daemon only): the log sits on a dm linear
# device whose table is swapped for the error target. The next flush fails:
# the daemon answers -EIO, status shows D, and writes still complete (no
# handle_errors). With the device restored, a suspend/resume of the mirror
# re-reads it and status shows A again.
sc_j() {
    local name=mlt-j-disk logname=mlt-j-logdev l1 l2 lg t since sectors
    new_leg l1 "j-1" 32 random
    new_leg l2 "j-2" 32 zero
    disk_log lg "j-log"
    sectors=$(blockdev --getsz "$lg")
    create "$logname" "0 $sectors linear $lg 0"
    mirror_table t "$MODE" disk "$(uid j-disk)" 65536 $REGION nosync "$l1" "$l2" "/dev/mapper/$logname"
    create "$name" "$t"
    check_sync "$name" 5
    write_data "$name" 0 0 2
    [[ $(st "$name") == *" A" ]] || fail "log device not A before the failure: $(st "$name")"

    since=$(log_size)
    must "swap the log device to the error target" dms reload "$logname" --table "0 $sectors error"
    must "suspend the log device" dms suspend "$logname"
    must "resume the log device" dms resume "$logname"
    write_data "$name" 4 4 2
    daemon_logged "$since" "log device write failed" || fail "no failed log write in the daemon log"
    [[ $(st "$name") == *" D" ]] || fail "status does not show D after the failed log write: $(st "$name")"
    check_readback "$name" 4 4 2
    note "log failure reported: $(st "$name")"

    must "restore the log device" dms reload "$logname" --table "0 $sectors linear $lg 0"
    must "suspend the log device" dms suspend "$logname"
    must "resume the log device" dms resume "$logname"
    must "suspend the mirror" dms suspend "$name"
    must "resume the mirror" dms resume "$name"
    [[ $(st "$name") == *" A" ]] || fail "status not A after the device came back and the mirror resumed: $(st "$name")"
    write_data "$name" 8 8 2
    check_readback "$name" 8 8 2
    check_readback "$name" 0 0 2
    check_readback "$name" 4 4 2
    note "log device back: $(st "$name")"
}

# ---------------------------------------------------------------- runner ----

cleanup_scenario() {
    local p d l
    if [[ -f $STATE/pids ]]; then
        while read -r p; do kill -KILL "$p" 2>/dev/null; done < "$STATE/pids"
    fi
    set_throttle 100
    [[ $MODE == userspace ]] && ! daemon_alive && { say "cleanup: daemon not running, restarting it"; start_daemon; }
    if [[ -f $STATE/dms ]]; then
        tac "$STATE/dms" | while read -r d; do
            dms info "$d" > /dev/null 2>&1 || continue
            dms resume "$d" > /dev/null 2>&1
            dms remove --retry "$d" > /dev/null 2>&1 || {
                say "cleanup: could not remove $d, trying --force"
                dms remove --force "$d" > /dev/null 2>&1 || say "cleanup: $d stays"
            }
        done
    fi
    if [[ -f $STATE/loops ]]; then
        while read -r l; do losetup -d "$l" 2>/dev/null; done < "$STATE/loops"
    fi
    rm -f "$STATE"/dms "$STATE"/loops "$STATE"/pids "$STATE"/rc.* "$STATE"/err.*
    find "$WORK" -maxdepth 1 -type f ! -name 'rand-*' -delete
}

selected() {
    local n=$1 p
    (( ${#SELECT[@]} == 0 )) && return 0
    for p in "${SELECT[@]}"; do
        [[ $n == "$p" || $n == "$p"-* ]] && return 0
    done
    return 1
}

run_scenario() {
    local name=$1; shift
    say "=== $name"
    : > "$REASON"
    local start=$SECONDS timedout=0 logpos
    logpos=$(log_size)
    (
        set -eE -o pipefail
        trap 'fail "command failed (line $LINENO): $BASH_COMMAND"' ERR
        "$@"
    ) &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if (( SECONDS - start > SCEN_LIMIT )); then
            timedout=1
            echo "timed out after ${SCEN_LIMIT}s (watchdog)" > "$REASON"
            pkill -KILL -P "$pid" 2>/dev/null
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.2
    done
    wait "$pid" 2>/dev/null
    local rc=$?
    cleanup_scenario
    local dur=$((SECONDS - start))
    if (( rc == 0 && timedout == 0 )); then
        echo "PASS $name" >> "$RESULTS"
        say "PASS $name (${dur}s)"
    else
        local why
        why=$(head -n 1 "$REASON")
        echo "FAIL $name: ${why:-exit code $rc}" >> "$RESULTS"
        say "FAIL $name (${dur}s): ${why:-exit code $rc}"
        if [[ $MODE == userspace ]]; then
            tail -c +$((logpos + 1)) "$DLOG" 2>/dev/null | grep -E '^(error|warning|critical)' | head -n 8 |
                while IFS= read -r l; do say "  daemon: $l"; done
        fi
    fi
    echo "TIME $name $dur" >> "$RESULTS"
    [[ $MODE == userspace ]] && sync
}

final_cleanup() {
    cleanup_scenario 2>/dev/null
    stop_daemon
    rm -rf "$WORK"
    dmesg > "$RES/dmesg.txt" 2>/dev/null
}

# ------------------------------------------------------------------ main ----
# Everything runs from main, called on the last line, so that bash has parsed
# the whole file before anything runs (the file is read live from the host).

main() {

    ALL=()
    for s in a-nosync b-resync c-write-during-resync d-suspend-reload e-integrated-flush f-daemon-kill g-bad-tables; do
        [[ $MODE == kernel && $s == f-* ]] && continue   # needs the daemon
        ALL+=("$s-core" "$s-disk")
    done
    ALL+=(h-eight-mirrors)
    [[ $MODE == userspace ]] && ALL+=(i-signals-core i-signals-disk j-log-device-failure-disk)
    PLAN=()
    for s in "${ALL[@]}"; do selected "$s" && PLAN+=("$s"); done
    for s in "${PLAN[@]}"; do echo "PLAN $s" >> "$RESULTS"; done
    (( ${#PLAN[@]} )) || { say "no scenario matches: ${SELECT[*]}"; echo DONE >> "$RESULTS"; exit 0; }

    RUNID=$(date +%s)
    rm -rf "$WORK"; mkdir -p "$STATE"
    trap final_cleanup EXIT

    say "kernel $(uname -r), mode $MODE, scenarios: ${PLAN[*]}"
    if ! load_modules; then
        for s in "${PLAN[@]}"; do echo "FAIL $s: could not load the dm/loop modules" >> "$RESULTS"; done
        echo DONE >> "$RESULTS"; exit 1
    fi
    dd if=/dev/urandom of="$RAND_FILL" bs=1M count=64 status=none
    dd if=/dev/urandom of="$RAND_DATA" bs=1M count=64 status=none

    if [[ $MODE == userspace ]]; then
        say "daemon: $BIN ($("$BIN" --version 2>&1 | head -n 1))"
        if ! start_daemon; then
            for s in "${PLAN[@]}"; do echo "FAIL $s: mirrorlogd did not start (see mirrorlogd.log)" >> "$RESULTS"; done
            echo DONE >> "$RESULTS"; exit 1
        fi
    fi

    for s in "${PLAN[@]}"; do
        letter=${s%%-*}
        kind=${s##*-}
        case $letter in
            h) run_scenario "$s" sc_h ;;
            *) run_scenario "$s" "sc_$letter" "$kind" ;;
        esac
    done
    echo DONE >> "$RESULTS"
    say "all scenarios done"
}

main "$@"; exit $?
