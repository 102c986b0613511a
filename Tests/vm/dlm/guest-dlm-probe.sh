#!/usr/bin/env bash
# guest-dlm-probe.sh --out DIR — inside a virtme-ng guest (the Debian kernel, the
# host's root filesystem read-only): brings up single-node corosync + dlm_controld,
# then runs dlm_probe.py scenarios and records what the real DLM does.
#
#   DIR   a writable directory shared with the host (vng --rwdir)
#
# Writes DIR/guest.log (everything), DIR/results.txt (one "RESULT key: value"
# line per observation, "SETUP_OK" once the DLM answers, "DONE" at the end),
# DIR/corosync.log, DIR/dlm_controld.log, DIR/<role>.out per probe process and
# DIR/lockdebug-*.txt snapshots. Every wait is bounded; the guest has its own
# time budget (GUEST_LIMIT seconds, default 600).

set -u
OUT=""
while (( $# )); do
    case $1 in
        --out) OUT=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -n $OUT && -d $OUT ]] || { echo "usage: $0 --out DIR" >&2; exit 2; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=Tests/vm/lib.sh
source "$HERE/../lib.sh"   # single_node_corosync_conf (its say() is replaced below)
PROBE=(python3 -B "$HERE/dlm_probe.py")
LS=mirrorlogd
GUEST_LIMIT=${GUEST_LIMIT:-600}
RES=$OUT/results.txt
exec >> "$OUT/guest.log" 2>&1
: > "$RES"

COROSYNC_PID="" DLMC_PID=""
declare -A PIDS=()

say() { printf '[dlm-probe] %s %s\n' "$(date +%T.%N | cut -c1-12)" "$*"; }
result() { say "RESULT $*"; printf 'RESULT %s\n' "$*" >> "$RES"; }
now() { date +%s.%N; }
# ms A B: (B - A) in milliseconds, A and B wallclock seconds with fraction
ms() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.0f\n", (b - a) * 1000 }'; }

finish() {
    local p
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    if [[ -n $DLMC_PID ]]; then
        kill -TERM "$DLMC_PID" 2>/dev/null
        for ((i = 0; i < 30; i++)); do kill -0 "$DLMC_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DLMC_PID" 2>/dev/null
    fi
    if [[ -n $COROSYNC_PID ]]; then
        kill -TERM "$COROSYNC_PID" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$COROSYNC_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$COROSYNC_PID" 2>/dev/null
    fi
    dmesg > "$OUT/dmesg.txt" 2>/dev/null
    sync
}

die() {
    say "FATAL: $*"
    printf 'FATAL %s\n' "$*" >> "$RES"
    finish
    exit 1
}

# wait_for LIMIT_S WHAT CMD...: polls CMD every 0.1 s; returns 1 on timeout.
wait_for() {
    local limit=$1 what=$2 t0=$SECONDS
    shift 2
    while ! "$@"; do
        if (( SECONDS - t0 >= limit )); then say "timed out after ${limit}s: $what"; return 1; fi
        (( SECONDS >= GUEST_LIMIT )) && die "guest time budget (${GUEST_LIMIT}s) used up: $what"
        sleep 0.1
    done
}

# ------------------------------------------------------------- probes ----

# start TAG ARGS...: runs dlm_probe.py ARGS in the background, output in OUT/TAG.out
start() {
    local tag=$1
    shift
    "${PROBE[@]}" "$@" > "$OUT/$tag.out" 2>&1 &
    PIDS[$tag]=$!
    say "started $tag (pid ${PIDS[$tag]}): dlm_probe.py $*"
}
# run TAG LIMIT ARGS...: runs dlm_probe.py in the foreground, bounded
run() {
    local tag=$1 limit=$2
    shift 2
    say "run $tag: dlm_probe.py $*"
    timeout -k 5 "$limit" "${PROBE[@]}" "$@" > "$OUT/$tag.out" 2>&1
    local rc=$?
    say "$tag exited $rc"
    return $rc
}
has() { grep -q " $2" "$OUT/$1.out" 2>/dev/null; }            # has TAG EVENTKIND
evt() { awk -v k="$2" '$1 == "EVENT" && $4 == k { print $2; exit }' "$OUT/$1.out" 2>/dev/null; }
line() { grep -m1 "^EVENT [0-9.]* pid=[0-9]* $2 " "$OUT/$1.out" 2>/dev/null | cut -d' ' -f4-; }
alive() { kill -0 "${PIDS[$1]}" 2>/dev/null; }
killtag() {
    [[ -n ${PIDS[$1]:-} ]] || return 0
    kill -KILL "${PIDS[$1]}" 2>/dev/null
    wait "${PIDS[$1]}" 2>/dev/null
    unset "PIDS[$1]"
}
reap() { # reap TAG LIMIT: wait for a background probe to exit by itself
    local t0=$SECONDS
    while alive "$1" && (( SECONDS - t0 < $2 )); do sleep 0.1; done
    alive "$1" && { say "$1 still running after $2 s: killed"; killtag "$1"; return 1; }
    wait "${PIDS[$1]}" 2>/dev/null
    local rc=$?
    unset "PIDS[$1]"
    return $rc
}
lockdebug() {
    {
        echo "== dlm_tool lockdebug -v -s $LS ($1)"
        timeout 10 dlm_tool lockdebug -v -s "$LS" 2>&1
        echo "== dlm_tool ls"
        timeout 10 dlm_tool ls 2>&1
        local f
        for f in /sys/kernel/debug/dlm/${LS}*; do
            [[ -e $f ]] || continue
            echo "== $f"
            timeout 10 cat "$f" 2>&1
        done
    } > "$OUT/lockdebug-$1.txt"
    say "lockdebug snapshot $1"
}

# ------------------------------------------------------------- setup ----

setup_env() {
    say "kernel $(uname -r); python $(python3 -V 2>&1)"
    say "mounts:"; grep -E ' (/|/etc|/run|/var|/var/.*|/tmp|/dev|/dev/shm|/sys/kernel/config|/sys/kernel/debug) ' /proc/mounts
    local d
    for d in /etc /var/lib /var/log /run /tmp /dev/shm; do
        if touch "$d/.dlm-probe-w" 2>/dev/null; then rm -f "$d/.dlm-probe-w"; say "writable: $d"; else say "read-only: $d"; fi
    done
    # Writable places the daemons need. On a read-only directory, a tmpfs over it.
    for d in /etc/corosync /etc/dlm /var/lib/corosync /var/log/corosync /var/log/dlm_controld /run/dlm_controld; do
        if ! mkdir -p "$d" 2>/dev/null || ! touch "$d/.w" 2>/dev/null; then
            mount -t tmpfs tmpfs "$d" || die "cannot make $d writable"
            say "tmpfs over $d"
            result "tmpfs-needed: $d"
        fi
        rm -f "$d/.w"
    done
    # /sys/kernel/config exists only once configfs is loaded (a module in Debian's kernel)
    [[ -d /sys/kernel/config ]] || modprobe configfs || die "modprobe configfs failed"
    if mountpoint -q /sys/kernel/config; then
        result "configfs: already mounted"
    else
        mount -t configfs none /sys/kernel/config || die "cannot mount configfs"
        result "configfs: modprobe configfs + mount -t configfs none /sys/kernel/config by the script"
    fi
    mountpoint -q /sys/kernel/debug || { mount -t debugfs none /sys/kernel/debug && say "debugfs mounted"; }
}

setup_dlm_module() {
    modprobe dlm || die "modprobe dlm failed"
    result "dlm module: $(grep -E '^dlm ' /proc/modules | cut -d' ' -f1-2)"
    say "/proc/misc dlm entries: $(grep dlm /proc/misc | tr '\n' ' ')"
    say "devtmpfs nodes: $(ls -l /dev/dlm* 2>&1 | tr '\n' ';')"
    say "/dev/misc before: $(ls -l /dev/misc 2>&1 | tr '\n' ';')"
    result "udevd running in the guest: $(pgrep -l udevd | tr '\n' ' ' || true)"
    result "ls -l /dev/misc after modprobe dlm: $(ls -l /dev/misc 2>&1 | grep dlm | awk '{print $9, $10, $11}' | tr '\n' ';')"
    local n devno made=()
    for n in dlm-control dlm-monitor dlm_plock; do
        [[ -e /dev/misc/$n ]] && continue
        devno=$(cat "/sys/class/misc/$n/dev" 2>/dev/null) || die "no /sys/class/misc/$n/dev"
        mkdir -p /dev/misc
        # same as udev's 51-dlm.rules (a symlink to /dev/$n there); a node works too
        mknod -m 0666 "/dev/misc/$n" c "${devno%%:*}" "${devno##*:}" || die "mknod /dev/misc/$n failed"
        made+=("$n=$devno")
    done
    result "device nodes made by the script: ${made[*]:-none (already present)}"
}

write_corosync_conf() {
    single_node_corosync_conf mldlmprobe "$OUT/corosync.log"
    cp /etc/corosync/corosync.conf "$OUT/corosync.conf"
}

quorate() { timeout 10 corosync-quorumtool -s 2>/dev/null | grep -qE '^Quorate: +Yes'; }
# dlm_tool status exits 0 even when it "cannot connect to dlm_controld", and answers
# "quorate 0 ... fence_init" for a moment after start: wait for "quorate 1"
dlm_up() {
    timeout 5 dlm_tool status > "$OUT/dlm_tool-status.txt" 2>&1
    grep -q '^cluster nodeid 1 quorate 1' "$OUT/dlm_tool-status.txt" || { kill -0 "$DLMC_PID" 2>/dev/null || die "dlm_controld exited"; return 1; }
}

start_daemons() {
    ip link set lo up
    write_corosync_conf
    local t0
    t0=$(now)
    corosync -f -c /etc/corosync/corosync.conf < /dev/null >> "$OUT/corosync.out" 2>&1 &
    COROSYNC_PID=$!
    wait_for 60 "corosync quorate" quorate || die "corosync did not become quorate"
    result "corosync quorate after: $(ms "$t0" "$(now)") ms"
    timeout 10 corosync-quorumtool -s > "$OUT/quorum.txt" 2>&1

    # dlm.conf equivalent; the command line options below say the same
    cat > /etc/dlm/dlm.conf <<EOF
enable_fencing=0
enable_startup_fencing=0
enable_quorum_fencing=0
enable_plock=0
log_debug=1
EOF
    cp /etc/dlm/dlm.conf "$OUT/dlm.conf"
    t0=$(now)
    dlm_controld --foreground 1 --daemon_debug 1 --log_debug 1 --enable_fencing 0 \
        --enable_startup_fencing 0 --enable_quorum_fencing 0 --enable_plock 0 \
        < /dev/null >> "$OUT/dlm_controld.log" 2>&1 &
    DLMC_PID=$!
    wait_for 60 "dlm_tool status answers" dlm_up || die "dlm_controld does not answer dlm_tool status"
    result "dlm_controld answers dlm_tool status after: $(ms "$t0" "$(now)") ms"
    result "dlm_tool status: $(tr '\n' ';' < "$OUT/dlm_tool-status.txt")"
    echo SETUP_OK >> "$RES"
}

# ---------------------------------------------------------- scenarios ----

scen_flags() {
    run flags 30 flags
    grep '^INFO' "$OUT/flags.out" | sed 's/^INFO /flag /' | while IFS= read -r l; do result "$l"; done
}

# (g) create: first (join), again while it exists, open; what a process exit leaves behind
scen_create() {
    run create1 90 --ls "$LS" create
    result "g create #1 (new lockspace): $(line create1 ls_create)"
    say "/dev/misc after create: $(ls -l /dev/misc | tr '\n' ';')"
    result "g /dev/misc/dlm_$LS after create: $(ls -l "/dev/misc/dlm_$LS" 2>&1)"
    result "g /dev/dlm_$LS (devtmpfs): $(ls -l "/dev/dlm_$LS" 2>&1)"
    timeout 10 dlm_tool ls > "$OUT/dlm_tool-ls-after-create1.txt" 2>&1
    result "g lockspace after create #1 process exited (no release): $(grep -c "^name *$LS" "$OUT/dlm_tool-ls-after-create1.txt") listed by dlm_tool ls"
    run create2 90 --ls "$LS" create
    result "g create #2 (exists, no process has it open): $(line create2 ls_create)"
    run open1 30 --ls "$LS" open
    result "g open (exists): $(line open1 ls_open)"
    # create while another process holds it open
    start keeper --ls "$LS" --timeout 10 hold keeper-lock
    wait_for 30 "keeper holds" has keeper held
    run create3 90 --ls "$LS" create
    result "g create #3 (exists, another process has it open): $(line create3 ls_create)"
    run open2 30 --ls nosuchls open
    result "g open of a lockspace that does not exist: $(line open2 ls_open)"
    killtag keeper
}

# (a)-(c): persistent EX holder killed; waiter; adopt; unlock
scen_orphan() {
    start A --ls "$LS" --lvb A-wrote-this hold slot-1
    wait_for 30 "A holds slot-1" has A held || { result "a: A never held slot-1: $(tail -n 3 "$OUT/A.out" | tr '\n' ';')"; return; }
    result "a A lock EX|PERSISTENT|VALBLK: $(line A granted); LVB by EX->EX convert: $(line A lvb_written)"
    start B --ls "$LS" --timeout 60 wait slot-1
    wait_for 30 "B queued" has B queued || { result "a: B not queued"; return; }
    sleep 1
    has B wait_granted && result "a B granted while A alive (unexpected)"
    lockdebug a-before-kill
    local tkill
    tkill=$(now)
    killtag A
    say "killed A (kill -9) at $tkill"
    if wait_for 20 "B granted after A's kill -9" has B wait_granted; then
        result "a B granted after kill -9 of persistent holder A: YES, $(ms "$tkill" "$(evt B wait_granted)") ms after the kill ($(line B wait_granted))"
    else
        result "a B granted after kill -9 of persistent holder A: NO within 20 s (A's lock is an orphan)"
    fi
    lockdebug a-after-kill
    result "e orphan in $LS""_locks after kill (id nodeid remid pid xid exflags flags sts grmode rqmode ...): $(grep '"slot-1"' "$OUT/lockdebug-a-after-kill.txt" | grep -v '^Resource' | head -n 2 | tr '\n' ';')"

    # (b) adopt while B waits, rewrite the LVB, keep it 4 s; (c) unlock
    start C --ls "$LS" --timeout 1 --hold 4 --lvb C-wrote-this adopt slot-1
    wait_for 20 "C's adopt outcome" has C adopt_result
    result "b C adopt (PERSISTENT|ORPHAN|VALBLK, EX): $(line C lock_call); $(line C adopt_result)"
    result "b C's LVB write (EX->EX convert) after adoption: $(line C lvb_written)"
    if has C adopt_holding; then
        sleep 1
        lockdebug b-adopted
        result "e lock after adoption: $(grep '"slot-1"' "$OUT/lockdebug-b-adopted.txt" | grep -v '^Resource' | head -n 2 | tr '\n' ';')"
        wait_for 15 "C unlocked" has C adopt_unlocked
        result "c C unlock: $(line C adopt_unlocked)"
        if wait_for 15 "B granted after C's unlock" has B wait_granted; then
            local tg
            tg=$(evt B wait_granted)
            result "b B waited through C's adoption: granted $(ms "$(evt C adopt_call)" "$tg") ms after C adopted"
            # C releases by EX->NL (LVB written) then unlock: B (EX) is compatible with NL, so it is
            # granted at the down-conversion, before C's unlock
            local tnl
            tnl=$(awk '$1 == "EVENT" && $4 == "convert_call" && $6 == "mode=0" { print $2; exit }' "$OUT/C.out")
            result "c B granted $(ms "$tnl" "$tg") ms after C's EX->NL convert call, $(ms "$(evt C unlock_call)" "$tg") ms after its dlm_ls_unlock call ($(line B wait_granted))"
            result "c B's grant AST (C wrote the LVB by EX->EX and EX->NL converts, then unlocked): $(grep -m1 ' ast ' "$OUT/B.out" | cut -d' ' -f4-)"
        else
            result "c B NOT granted within 15 s of C's unlock"
        fi
    fi
    reap C 10
    reap B 10 || true
    lockdebug c-after
}

# adopt corner cases: no orphan; wrong mode; NOQUEUE against an orphan
scen_adopt_edges() {
    run adopt-none 20 --ls "$LS" --timeout 1 adopt no-such-orphan
    result "b2 adopt with no orphan: call $(line adopt-none adopt_call); outcome $(line adopt-none adopt_result)"
    start A2 --ls "$LS" hold slot-2
    wait_for 30 "A2 holds slot-2" has A2 held || return
    killtag A2
    sleep 0.5
    run nq-orphan 20 --ls "$LS" --timeout 5 noqueue slot-2
    result "b2 NOQUEUE EX on an orphaned EX lock: $(line nq-orphan noqueue_result) / $(line nq-orphan lock_call)"
    run adopt-pr 20 --ls "$LS" --mode PR --timeout 1 adopt slot-2
    result "b2 adopt in the wrong mode (PR, orphan is EX): call $(line adopt-pr adopt_call); outcome $(line adopt-pr adopt_result)"
    lockdebug b2-after-wrong-mode
    run adopt-ex 20 --ls "$LS" --timeout 1 --hold 0.2 adopt slot-2
    result "b2 adopt in the right mode after that: $(line adopt-ex adopt_result); unlock $(line adopt-ex adopt_unlocked)"
    # adopt twice: second adopter when the first already took it
    start A3 --ls "$LS" hold slot-2b
    wait_for 30 "A3 holds" has A3 held || return
    killtag A3
    sleep 0.5
    start C1 --ls "$LS" --timeout 1 --hold 4 adopt slot-2b
    wait_for 10 "C1 adopted" has C1 adopt_holding
    run adopt-twice 20 --ls "$LS" --timeout 1 adopt slot-2b
    result "b2 second adopter while the first holds the adopted lock: call $(line adopt-twice adopt_call); outcome $(line adopt-twice adopt_result)"
    reap C1 15
}

# (d) non-persistent locks: kill -9 and plain exit without unlock; persistent + clean exit
scen_nonpersistent() {
    start D --ls "$LS" --lvb D-wrote-this hold-np slot-3
    wait_for 30 "D holds slot-3" has D held || return
    start W --ls "$LS" --timeout 20 wait slot-3
    wait_for 30 "W queued" has W queued || return
    sleep 1
    local tkill
    tkill=$(now)
    killtag D
    if wait_for 20 "W granted" has W wait_granted; then
        result "d kill -9 of a NON-persistent EX holder: waiter granted $(ms "$tkill" "$(evt W wait_granted)") ms after the kill ($(line W wait_granted))"
    else
        result "d kill -9 of a NON-persistent EX holder: waiter NOT granted within 20 s"
    fi
    result "d waiter's grant AST after the NON-persistent holder (LVB D-wrote-this) was killed: $(grep -m1 ' ast ' "$OUT/W.out" | cut -d' ' -f4-)"
    reap W 10 || true

    run exit-np 30 --ls "$LS" exit-np slot-4
    run nq4 20 --ls "$LS" --timeout 5 noqueue slot-4
    result "d NON-persistent holder exited (exit 0, no unlock): NOQUEUE EX afterwards: $(line nq4 noqueue_result)"

    run exit-p 30 --ls "$LS" exit-p slot-5
    run nq5 20 --ls "$LS" --timeout 5 noqueue slot-5
    result "d PERSISTENT holder exited cleanly (exit 0, no unlock): NOQUEUE EX afterwards: $(line nq5 noqueue_result)"
    lockdebug d-after-exit-p
    result "e lockdebug with the orphan of slot-5: $(grep -A3 -i 'slot-5' "$OUT/lockdebug-d-after-exit-p.txt" | tr -s ' ' | tr '\n' ';' | cut -c1-300)"
}

# LVB corner: libdlm's unlock with LKF_VALBLK (sb_lvbptr is not copied into the request)
scen_lvb() {
    run rel-valblk 30 --ls "$LS" --lvb unlock-wrote-this --unlock-valblk release slot-8
    run nq8 20 --ls "$LS" --timeout 5 noqueue slot-8
    result "lvb after dlm_ls_unlock(LKF_VALBLK) with 'unlock-wrote-this' in sb_lvbptr, seen by the next EX: $(grep -m1 ' ast ' "$OUT/nq8.out" | cut -d' ' -f4-)"
    run rel-conv 30 --ls "$LS" --lvb convert-wrote-this release slot-8b
    run nq8b 20 --ls "$LS" --timeout 5 noqueue slot-8b
    result "lvb after convert EX->NL with LKF_VALBLK then unlock, seen by the next EX: $(grep -m1 ' ast ' "$OUT/nq8b.out" | cut -d' ' -f4-)"
    start A9 --ls "$LS" --lvb A9-wrote-this hold slot-9
    wait_for 30 "A9 holds" has A9 held || return
    killtag A9
    run adopt9 20 --ls "$LS" --timeout 1 --hold 0.1 adopt slot-9
    run nq9 20 --ls "$LS" --timeout 5 noqueue slot-9
    result "lvb written by a persistent holder killed -9, after adopt + EX->NL (no VALBLK) + unlock, seen by the next EX: $(grep -m1 ' ast ' "$OUT/nq9.out" | cut -d' ' -f4-)"
}

# (f) releasing lockspaces: libdlm's call, then the kernel's answers (raw DLM_USER_REMOVE_LOCKSPACE)
kmsg_release() { dmesg | grep -E "$1: release_lockspace|$1: dlm_release|$1: leaving|$1: release" | tail -n 1 | cut -c1-100; }
listed() { timeout 10 dlm_tool ls 2>/dev/null | grep -c "^name *$1\$"; }
scen_release() {
    run rel-libdlm 60 --ls "$LS" release-ls slot-6
    result "f libdlm dlm_release_lockspace(force=0) on $LS (created many times) holding a persistent lock: $(line rel-libdlm release_lockspace); kernel log: $(kmsg_release "$LS"); still listed: $(listed "$LS")"
    local L=relprobe
    start P1 --ls "$L" hold rp-1
    wait_for 30 "P1 holds" has P1 held || return
    run rr1 30 --ls "$L" rawrelease
    result "f raw release force=0, create count 1, live process holds a lock: $(line rr1 rawrelease); listed: $(listed $L)"
    killtag P1
    sleep 0.3
    run rr2 30 --ls "$L" rawrelease
    result "f raw release force=0, only an orphan left: $(line rr2 rawrelease); listed: $(listed $L)"
    run rr3 30 --ls "$L" --force 1 rawrelease
    result "f raw release FORCEFREE, orphan left: $(line rr3 rawrelease); listed: $(listed $L); /dev/misc/dlm_$L: $(ls -l /dev/misc/dlm_$L 2>&1 | cut -c1-90)"
    run c1 90 --ls "$L" create
    run c2 90 --ls "$L" create
    result "f create x2 on a fresh $L: $(line c1 ls_create) / $(line c2 ls_create)"
    run rr4 30 --ls "$L" rawrelease
    result "f raw release #1 after 2 creates (no locks): $(line rr4 rawrelease); listed: $(listed $L)"
    run rr5 30 --ls "$L" rawrelease
    result "f raw release #2: $(line rr5 rawrelease); listed: $(listed $L); /dev/misc/dlm_$L: $(ls -l /dev/misc/dlm_$L 2>&1 | cut -c1-90)"
    run c3 90 --ls "$L" create
    result "f create after the lockspace was really released (join again): $(line c3 ls_create)"
    run rr6 30 --ls "$L" rawrelease
}

# ---------------------------------------------------------------- main ----

say "start, budget ${GUEST_LIMIT}s"
setup_env
setup_dlm_module
start_daemons
scen_flags
scen_create
scen_orphan
scen_adopt_edges
scen_nonpersistent
scen_lvb
scen_release
timeout 10 dlm_tool dump > "$OUT/dlm_tool-dump.txt" 2>&1
result "kernel dlm messages: $(dmesg 2>/dev/null | grep -E "dlm" | grep -v "Command line" | tail -n 15 | cut -c1-120 | tr "\n" ";")"
finish
echo DONE >> "$RES"
say "done in ${SECONDS}s"
exit 0
