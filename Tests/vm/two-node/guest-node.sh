#!/bin/bash
# guest-node.sh — one node of the two-node real-kernel test of clustered-disk logs.
# Runs INSIDE a virtme-ng guest (started by run-two-node.sh), as root.
#
#   guest-node.sh --node 1|2 --shared DIR [--phase crash|restart]
#
# Without --phase: two-node-crash-recovery (below). With --phase (config.sh
# sets SCENARIO=whole-cluster): two-node-whole-cluster-restart, whose first
# boot (crash) has both nodes write and crash one after the other, and whose
# second boot (restart) re-creates the mirror on the same disks without
# nosync and checks the resync and the data (see the functions wc_*).
#
# DIR is the host directory both guests mount read-write (vng --rwdir). It
# holds config.sh (written by the host), the daemon binary, the data patterns,
# every log, and the marker files through which the two nodes synchronise:
#
#   ready-N       node N runs corosync (2 quorate members) and mirrorlogd
#   created-N     node N created the mirror and sees it in sync
#   writing-1     node 1's writer completed its first pass
#   node2-done.a  node 2's writer a: one line per completed O_DIRECT block
#   node2-done.b  (the same for writer b)  [written by node2-writer.py]
#   crashing-2    node 2 is about to crash itself (sysrq c)
#   abort         a node gave up; the first line says why (the other stops)
#   result-N      "PASS ..." or "FAIL <reason>" (node 1 is the verdict)
#   last-pass-1   node 1's last completed write pass (for the host's check)
#   (two-node-whole-cluster-restart also: crashing-1, node1-done.{a,b},
#   crash-notes-1 (node 1's notes from the crash boot), first-status-N (the
#   sync count right after the restart's create); see the wc_* functions)
#
# Node 1 (survivor): creates the mirror first; writes its range in passes
# (each pass a different pattern) before, during and after node 2's crash;
# after the crash waits until corosync shows 1 member and the mirror is in
# sync again, stops writing, and verifies: legs identical, its data, node 2's
# completed blocks, zeros elsewhere.
# Node 2 (victim): its second leg is a dm-delay device (writes DELAY_MS late)
# over the shared disk; creates the mirror, writes its range with two
# concurrent writers (node2-writer.py; each completed block recorded in DIR),
# and crashes the kernel with sysrq after CRASH_AFTER blocks at a moment when a
# second-leg write is in flight: that region then differs between the legs.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=Tests/vm/lib.sh
source "$HERE/../lib.sh"
# shellcheck source=Tests/vm/dlm-lib.sh
source "$HERE/../dlm-lib.sh"

NODE="" SHARED="" PHASE=""
while (( $# )); do
    case $1 in
        --node) NODE=$2; shift 2 ;;
        --shared) SHARED=$2; shift 2 ;;
        --phase) PHASE=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
[[ $NODE == 1 || $NODE == 2 ]] || { echo "--node 1|2 is required" >&2; exit 2; }
[[ -n $SHARED && -f $SHARED/config.sh ]] || { echo "--shared DIR with config.sh is required" >&2; exit 2; }
[[ -z $PHASE || $PHASE == crash || $PHASE == restart ]] || { echo "--phase crash|restart" >&2; exit 2; }
# shellcheck source=/dev/null
source "$SHARED/config.sh"
# config.sh sets: UUID DM LEG_MB REGION BS R1_OFF R1_LEN R2_OFF R2_LEN CRASH_AFTER
# DELAY_MS NET MAC1 MAC2 TOKEN_MS GUEST_LIMIT (offsets and lengths in bytes);
# for two-node-whole-cluster-restart also SCENARIO=whole-cluster NODE1_MORE

OTHER=$((3 - NODE))
BIN=$SHARED/mirrorlogd
DLOG=$SHARED/mirrorlogd-node$NODE.log
RESULT=$SHARED/result-$NODE
ABORT=$SHARED/abort
W=/dev/shm/mlt2               # guest-local work dir (tmpfs)
PAT1=$W/pat1 PAT2=$W/pat2
LEN=$((LEG_MB * 2048))        # sectors
MB=$((1024 * 1024))
DAEMON_PID="" COROSYNC_PID=""
NOTES=()

say() { printf '[node%s] %s %s\n' "$NODE" "$(date +%T.%N | cut -c1-12)" "$*"; }
note() { NOTES+=("$*"); say "note: $*"; }

# fail REASON: records the verdict, tells the other node, leaves diagnostics.
fail() {
    say "FAIL: $*"
    [[ -e $ABORT ]] || printf 'node %s: %s\n' "$NODE" "$*" > "$ABORT"
    printf 'FAIL %s\n' "$*" > "$RESULT"
    diagnostics
    finish
    exit 1
}

diagnostics() {
    say "status: $(timeout 20 dmsetup status "$DM" 2>&1 | tr '\n' ' ')"
    if [[ -n $DAEMON_PID ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        kill -USR1 "$DAEMON_PID" 2>/dev/null && sleep 1   # state dump into the daemon log
    fi
    timeout 10 corosync-quorumtool -s > "$SHARED/quorum-node$NODE.txt" 2>&1
    dmesg > "$SHARED/dmesg-node$NODE.txt" 2>/dev/null
}

# finish: bounded teardown (the VM is thrown away anyway).
finish() {
    [[ -f $W/stop ]] || touch "$W/stop" 2>/dev/null
    if [[ -n ${WRITER:-} ]]; then kill "$WRITER" 2>/dev/null; fi
    if timeout 30 dmsetup info "$DM" > /dev/null 2>&1; then
        timeout 30 dmsetup resume "$DM" > /dev/null 2>&1
        timeout 60 dmsetup remove "$DM" > /dev/null 2>&1 || say "could not remove $DM"
    fi
    if [[ -n $DAEMON_PID ]]; then
        kill -TERM "$DAEMON_PID" 2>/dev/null; sleep 0.5; kill -TERM "$DAEMON_PID" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
    fi
    if [[ -n $COROSYNC_PID ]]; then
        kill -TERM "$COROSYNC_PID" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$COROSYNC_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$COROSYNC_PID" 2>/dev/null
    fi
    sync
}

# wait_until LIMIT_S WHAT CMD...: polls CMD every 0.3 s. Fails on timeout, when
# the other node aborted, or when the guest's time budget is used up.
wait_until() {
    local limit=$1 what=$2 start=$SECONDS
    shift 2
    while :; do
        "$@" && return 0
        [[ -e $ABORT ]] && fail "stopped waiting for $what: $(head -n 1 "$ABORT")"
        (( SECONDS - start >= limit )) && fail "timed out after ${limit}s waiting for $what"
        (( SECONDS >= GUEST_LIMIT )) && fail "guest time budget (${GUEST_LIMIT}s) used up waiting for $what"
        sleep 0.3
    done
}

exists() { [[ -e $SHARED/$1 ]]; }

# ----------------------------------------------------------------- setup ----

setup_net() {
    local mac=$1 ifc="" d
    for d in /sys/class/net/*; do
        [[ $(cat "$d/address" 2>/dev/null) == "$mac" ]] && ifc=${d##*/}
    done
    [[ -n $ifc ]] || fail "no network interface with MAC $mac"
    ip link set lo up
    ip addr add "$NET.$NODE/24" dev "$ifc" || fail "ip addr add on $ifc failed"
    ip link set "$ifc" up || fail "ip link set $ifc up failed"
    say "cluster link $ifc = $NET.$NODE/24"
}

# find_disk SERIAL: /dev/vdX of the virtio disk with that serial.
find_disk() {
    local d
    for d in /sys/block/vd*; do
        [[ $(cat "$d/serial" 2>/dev/null) == "$1" ]] && { echo "/dev/${d##*/}"; return 0; }
    done
    return 1
}

write_corosync_conf() {
    mkdir -p /etc/corosync /var/lib/corosync /var/log/corosync
    cat > /etc/corosync/corosync.conf <<EOF
# two-node test cluster (generated by guest-node.sh, node $NODE)
totem {
    version: 2
    cluster_name: mlt2node
    transport: knet
    ip_version: ipv4
    crypto_cipher: none
    crypto_hash: none
    token: $TOKEN_MS
}
nodelist {
    node {
        nodeid: 1
        name: node1
        ring0_addr: $NET.1
    }
    node {
        nodeid: 2
        name: node2
        ring0_addr: $NET.2
    }
}
quorum {
    provider: corosync_votequorum
    two_node: 1
}
logging {
    to_logfile: yes
    logfile: $SHARED/corosync-node$NODE.log
    to_stderr: no
    to_syslog: no
    timestamp: hires
    debug: off
}
EOF
}

# members: number of members corosync-quorumtool shows (0 if it cannot ask).
members() {
    timeout 10 corosync-quorumtool -s 2>/dev/null | awk -F: '/^Nodes:/ { gsub(/ /, "", $2); print $2; f = 1 } END { if (!f) print 0 }'
}
quorate() { timeout 10 corosync-quorumtool -s 2>/dev/null | grep -qE '^Quorate: +Yes'; }
two_quorate() { [[ $(members) == 2 ]] && quorate; }

start_corosync() {
    write_corosync_conf
    corosync -f < /dev/null >> "$SHARED/corosync-node$NODE.out" 2>&1 &
    COROSYNC_PID=$!
    say "corosync pid $COROSYNC_PID"
    wait_until 150 "corosync: 2 quorate members" two_quorate
    say "corosync: 2 members, quorate"
}

# start_fencing_dlm: dlm_controld with real fencing (FENCING=on in config.sh, the crash test) or
# without (the whole-cluster restart). The fence agent asks the host harness, through the shared
# directory, to kill the other guest's QEMU, and reports success only once the host says it is gone.
start_fencing_dlm() {
    local res=$SHARED/dlm-node$NODE${PHASE:+-$PHASE}
    mkdir -p "$res"
    FENCE_AGENT=/run/mlt-fence-agent
    cat > "$FENCE_AGENT" <<EOF
#!/bin/bash
# Generated by guest-node.sh: dlm_controld's fence_all agent (key=value lines on stdin).
victim=""
while IFS='=' read -r key value; do [[ \$key == node ]] && victim=\$value; done
[[ -n \$victim ]] || exit 1
echo "\$(date +%s.%N) node $NODE asks to fence node \$victim" >> "$SHARED/fence-log"
: > "$SHARED/fence-request-\$victim"
for ((i = 0; i < 240; i++)); do
    [[ -e "$SHARED/fenced-\$victim" ]] && { echo "\$(date +%s.%N) node \$victim fenced" >> "$SHARED/fence-log"; exit 0; }
    sleep 0.5
done
exit 1
EOF
    chmod 0755 "$FENCE_AGENT"
    start_dlm "$res" "${FENCING:-off}" || fail "the DLM did not start (see $res/dlm_controld.log)"
}

start_daemon() {
    printf '=== mirrorlogd node %s started %s ===\n' "$NODE" "$(date +%T.%N)" >> "$DLOG"
    "$BIN" -f --debug < /dev/null > >(exec cat >> "$DLOG") 2>&1 &
    DAEMON_PID=$!
    wait_until 30 "mirrorlogd to listen on the DM connector" daemon_listening
    say "mirrorlogd pid $DAEMON_PID listening"
}
daemon_listening() {
    kill -0 "$DAEMON_PID" 2>/dev/null || fail "mirrorlogd exited at start (see $DLOG)"
    netlink_dm_listener
}

# check_unwritten_zero: nobody wrote [R1_OFF+R1_LEN, R2_OFF) and
# [R2_OFF+R2_LEN, end) of the mirror: still zeros.
check_unwritten_zero() {
    local out
    out=$(cmp -n $((R2_OFF - R1_OFF - R1_LEN)) /dev/zero \
              <(dd if="/dev/mapper/$DM" bs=1M iflag=direct,skip_bytes,count_bytes skip=$((R1_OFF + R1_LEN)) count=$((R2_OFF - R1_OFF - R1_LEN)) status=none) 2>&1) ||
        fail "unwritten area between the ranges is not zero: $out"
    out=$(cmp -n $((LEG_MB * MB - R2_OFF - R2_LEN)) /dev/zero \
              <(dd if="/dev/mapper/$DM" bs=1M iflag=direct,skip_bytes skip=$((R2_OFF + R2_LEN)) status=none) 2>&1) ||
        fail "unwritten area after node 2's range is not zero: $out"
}

regions() { echo $(((LEN + REGION - 1) / REGION)); }

create_mirror() {
    local table out
    table="0 $LEN mirror userspace 5 $UUID clustered-disk $LOGDEV $REGION nosync 2 $LEG1 0 ${MLEG2:-$LEG2} 0"
    say "dmsetup create $DM: $table"
    out=$(timeout 120 dmsetup create "$DM" --table "$table" 2>&1) || fail "dmsetup create failed: $out"
    wait_until 120 "$DM in sync after create" is_in_sync "$DM"
    say "created: $(timeout 20 dmsetup status "$DM")"
}

setup() {
    say "kernel $(uname -r), daemon $BIN"
    mkdir -p "$W"
    # run a copy from tmpfs: the 9p share has no page cache (see guest-suite.sh)
    cp "$BIN" "$W/mirrorlogd" && BIN=$W/mirrorlogd
    local m
    for m in dm-mod dm-mirror dm-log-userspace; do modprobe "$m" || fail "modprobe $m failed"; done
    local mac=$MAC1
    (( NODE == 2 )) && mac=$MAC2
    setup_net "$mac"
    LEG1=$(find_disk mltleg1) || fail "no disk with serial mltleg1"
    LEG2=$(find_disk mltleg2) || fail "no disk with serial mltleg2"
    LOGDEV=$(find_disk mltlog) || fail "no disk with serial mltlog"
    say "legs $LEG1 $LEG2, log $LOGDEV"
    cp "$SHARED/pat1" "$PAT1" && cp "$SHARED/pat2" "$PAT2" || fail "cannot copy the data patterns"
    start_corosync
    start_fencing_dlm
    start_daemon
    touch "$SHARED/ready-$NODE"
    wait_until 120 "node $OTHER to be ready" exists "ready-$OTHER"
}

# ---------------------------------------------------------------- node 1 ----

# writer1: passes over [R1_OFF, R1_OFF+R1_LEN) in BS blocks, one O_DIRECT
# write each; pass p writes half (p % 2) of pat1. Stops after a pass when
# $W/stop exists. "pass p" lines in $W/passes.
writer1() {
    local p=0
    while :; do
        p=$((p + 1))
        if ! dd if="$PAT1" of="/dev/mapper/$DM" bs="$BS" iflag=skip_bytes skip=$(((p % 2) * R1_LEN)) \
                oflag=direct,seek_bytes seek="$R1_OFF" count=$((R1_LEN / BS)) conv=notrunc \
                status=none 2> "$W/writer1.err"; then
            echo "error $p" >> "$W/passes"
            exit 1
        fi
        echo "pass $p" >> "$W/passes"
        [[ -e $W/stop ]] && exit 0
    done
}
passes() { local n; n=$(grep -c '^pass' "$W/passes" 2>/dev/null); echo "${n:-0}"; }
writer1_ok() {
    grep -q '^error' "$W/passes" 2>/dev/null &&
        fail "node 1's write failed in pass $(grep '^error' "$W/passes" | head -n 1 | cut -d' ' -f2): $(head -c 300 "$W/writer1.err")"
    kill -0 "$WRITER" 2>/dev/null || [[ -e $W/stop ]] || fail "node 1's writer exited unexpectedly"
    return 0
}
passes_at_least() { writer1_ok; (( $(passes) >= $1 )); }

crash_announced() { writer1_ok; exists crashing-2; }

node2_blocks() { cat "$SHARED"/node2-done.* 2>/dev/null | grep -c '^[0-9]'; }

# after_crash: node 1 keeps writing; watches corosync and the sync count until
# the failure is handled: 1 member, >= 2 more passes, and N/N seen at least
# 5 s after the membership change. If the count stays below N without moving
# for STALL_S once node 1 is alone, STALLED gets the reason (node1 then
# checks whether a suspend/resume gets the resync going, and fails).
STALL_S=60
after_crash() {
    local t_crash=$SECONDS p0 t_members="" r min="" total n t_insync="" last="" since=$SECONDS
    total=$(regions)
    p0=$(passes)
    STALLED=""
    say "node 2 crashes now (it completed $(node2_blocks) blocks); node 1 is in pass $((p0 + 1))"
    while :; do
        writer1_ok
        if [[ -z $t_members ]] && [[ $(members) == 1 ]]; then
            t_members=$SECONDS
            note "corosync on node 1 shows 1 member $((t_members - t_crash))s after the crash"
        fi
        r=$(sync_ratio "$DM")
        if [[ $r =~ ^([0-9]+)/([0-9]+)$ ]]; then
            n=${BASH_REMATCH[1]}
            if [[ -z $min ]] || (( n < min )); then min=$n; fi
            if (( n == total )) && [[ -n $t_members ]] && (( SECONDS - t_members >= 5 )); then
                t_insync=$SECONDS
            fi
            if [[ $n != "$last" ]]; then last=$n; since=$SECONDS; fi
        fi
        if [[ -n $t_insync ]] && (( $(passes) >= p0 + 2 )); then break; fi
        if [[ -n $t_members && -n $last ]] && (( last < total && SECONDS - since >= STALL_S && $(passes) >= p0 + 2 )); then
            local works
            works=$(awk '/member .* failed/ { f = 1 } f && /GET_RESYNC_WORK/ { n++ } END { print n + 0 }' "$DLOG")
            STALLED="resync stalled after node 2's crash: the sync count stayed at $last/$total for ${STALL_S}s after node 1 was alone (lowest $min/$total) while node 1 kept writing ($(( $(passes) - p0 )) passes since the crash); GET_RESYNC_WORK requests in node 1's daemon log since the failure: $works"
            say "$STALLED"
            return 0
        fi
        [[ -e $ABORT ]] && fail "aborted: $(head -n 1 "$ABORT")"
        if (( SECONDS - t_crash > 240 || SECONDS >= GUEST_LIMIT )); then
            local why="after node 2's crash: "
            [[ -z $t_members ]] && why+="corosync still shows $(members) member(s); "
            why+="$(( $(passes) - p0 )) write pass(es) completed since the crash; status $(timeout 20 dmsetup status "$DM" 2>&1)"
            fail "$why (gave up after $((SECONDS - t_crash))s)"
        fi
        sleep 0.3
    done
    note "after the crash: lowest sync count seen ${min}/$total; in sync again $((t_insync - t_crash))s after the crash; $(( $(passes) - p0 )) write passes completed since the crash"
}

# verify: everything read O_DIRECT from the legs and the mirror.
verify() {
    local out last half total
    total=$(regions)
    last=$(grep '^pass' "$W/passes" | tail -n 1 | cut -d' ' -f2)
    half=$((last % 2))
    echo "$last" > "$SHARED/last-pass-1"
    say "verifying (node 1's last pass: $last)"

    out=$(cmp <(dd if="$LEG1" bs=1M iflag=direct count="$LEG_MB" status=none) \
              <(dd if="$LEG2" bs=1M iflag=direct count="$LEG_MB" status=none) 2>&1) ||
        fail "legs differ: $out"
    say "legs identical ($LEG_MB MiB)"

    out=$(cmp <(dd if="$PAT1" bs=1M iflag=skip_bytes,count_bytes skip=$((half * R1_LEN)) count="$R1_LEN" status=none) \
              <(dd if="/dev/mapper/$DM" bs=1M iflag=direct,skip_bytes,count_bytes skip="$R1_OFF" count="$R1_LEN" status=none) 2>&1) ||
        fail "node 1's data (pass $last) differs: $out"
    say "node 1's data correct"

    dd if="/dev/mapper/$DM" of="$W/r2" bs=1M iflag=direct,skip_bytes,count_bytes skip="$R2_OFF" count="$R2_LEN" status=none ||
        fail "cannot read node 2's range"
    local b nb=0
    while read -r b; do
        [[ $b =~ ^[0-9]+$ ]] || continue
        out=$(cmp -n "$BS" -i "$((b * BS)):$((b * BS))" "$PAT2" "$W/r2" 2>&1) ||
            fail "node 2's block $b (completed before the crash) differs: $out"
        nb=$((nb + 1))
    done < <(cat "$SHARED"/node2-done.* 2>/dev/null)
    (( nb >= CRASH_AFTER )) || fail "only $nb of node 2's completed blocks recorded (expected >= $CRASH_AFTER)"
    say "node 2's $nb completed blocks correct"

    # Nobody wrote [R1_OFF+R1_LEN, R2_OFF) and [R2_OFF+R2_LEN, end): still zeros.
    check_unwritten_zero
    say "unwritten areas still zero"

    local st
    st=$(timeout 20 dmsetup status "$DM" 2>&1)
    [[ $st == *COM_FAILURE* ]] && fail "status shows COM_FAILURE: $st"
    awk '$3 == "mirror" { n = $4; h = $(7 + n); if (h !~ /^A+$/) exit 1 }' <<< "$st" || fail "leg health not all A: $st"
    [[ $st =~ [[:space:]]D$ ]] && fail "log device marked failed (D): $st"
    is_in_sync "$DM" || fail "not in sync at the end: $st"
    VERIFIED_BLOCKS=$nb
}

node1() {
    create_mirror
    touch "$SHARED/created-1"
    wait_until 180 "node 2 to create the mirror" exists created-2
    writer1 & WRITER=$!
    wait_until 120 "node 1's first write pass" passes_at_least 1
    say "first pass written"
    touch "$SHARED/writing-1"
    wait_until 240 "node 2 to crash itself" crash_announced
    after_crash
    if [[ -n $STALLED ]]; then
        # Diagnosis only: does a suspend/resume (which resets the kernel's
        # cached in_sync_hint) get the resync going? The test fails anyway.
        local t0=$SECONDS out
        # What the stall leaves on the disks: node 2's range on the two legs.
        out=$(cmp <(dd if="$LEG1" bs=1M iflag=direct,skip_bytes,count_bytes skip="$R2_OFF" count="$R2_LEN" status=none) \
                  <(dd if="$LEG2" bs=1M iflag=direct,skip_bytes,count_bytes skip="$R2_OFF" count="$R2_LEN" status=none) 2>&1)
        if [[ -n $out ]]; then
            STALLED+="; meanwhile the legs differ in node 2's range ($(head -n 1 <<< "$out" | sed 's/^.*differ: //') from byte $R2_OFF)"
        else
            STALLED+="; the legs are identical in node 2's range"
        fi
        if out=$(timeout 60 dmsetup suspend --noudevsync "$DM" 2>&1 && timeout 60 dmsetup resume --noudevsync "$DM" 2>&1); then
            if wait_in_sync "$DM" 120; then
                STALLED+="; after a manual suspend/resume of $DM it was in sync within $((SECONDS - t0))s"
            else
                STALLED+="; still not in sync 120 s after a manual suspend/resume: $(timeout 20 dmsetup status "$DM" 2>&1)"
            fi
        else
            STALLED+="; a manual suspend/resume of $DM failed after $((SECONDS - t0))s: $(tr '\n' ' ' <<< "$out")"
            timeout 30 dmsetup resume --noudevsync "$DM" > /dev/null 2>&1
            wait_in_sync "$DM" 60 && STALLED+=" (but the mirror was in sync $((SECONDS - t0))s after it)"
        fi
        say "$STALLED"
        is_in_sync "$DM" || fail "$STALLED"
    fi
    touch "$W/stop"
    local t=$SECONDS
    while kill -0 "$WRITER" 2>/dev/null; do
        (( SECONDS - t > 120 )) && fail "node 1's writer did not finish its pass within 120 s"
        sleep 0.2
    done
    wait "$WRITER" || fail "node 1's writer failed: $(tail -n 1 "$W/passes") $(head -c 300 "$W/writer1.err")"
    WRITER=""
    say "writer stopped after pass $(passes)"
    wait_until 120 "$DM in sync after the writes stopped" is_in_sync "$DM"
    verify
    [[ -n $STALLED ]] && fail "$STALLED (then: legs identical, all data correct)"

    local rec failed_line
    failed_line=$(grep -m1 -E 'member .* failed' "$DLOG" | sed 's/^.*member/member/')
    rec=$(grep -m1 -E 'recovery generation [0-9]+ done' "$DLOG" | sed 's/^.*recovery generation/recovery generation/')
    if [[ -n $failed_line ]]; then
        note "daemon: $failed_line"
        # node 2 crashed with a write in flight (node2-writer.py waits for
        # one): its region was marked, and the survivor must know it.
        [[ $failed_line == *"its 0 marked region"* ]] &&
            fail "node 2 crashed with a write in flight, but node 1's daemon holds no marked region of it: $failed_line"
    else
        note "no 'member ... failed' line in node 1's daemon log"
    fi
    [[ -n $rec ]] && note "daemon: $rec"
    note "node 1's kernel sent $(awk '/member .* failed/ { f = 1 } f && /SET_REGION_SYNC seq=/ { n++ } END { print n + 0 }' "$DLOG") SET_REGION_SYNC request(s) after the failure"
    kill -USR1 "$DAEMON_PID" 2>/dev/null
    sleep 0.5
    finish
    printf 'PASS legs identical, node 1 data (pass %s) and %s completed node-2 blocks correct; %s\n' \
        "$(cat "$SHARED/last-pass-1")" "$VERIFIED_BLOCKS" "$(printf '%s; ' "${NOTES[@]}" | sed 's/; $//')" > "$RESULT"
    dmesg > "$SHARED/dmesg-node1.txt" 2>/dev/null
    say "PASS"
}

# ---------------------------------------------------------------- node 2 ----

# make_delay_leg NAME: a dm-delay device NAME over $LEG2 that holds writes for
# DELAY_MS (reads undelayed); MLEG2 becomes the mirror's second leg.
make_delay_leg() {
    modprobe dm-delay || fail "modprobe dm-delay failed"
    local sectors out
    sectors=$(blockdev --getsz "$LEG2") || fail "blockdev --getsz $LEG2 failed"
    out=$(timeout 60 dmsetup create "$1" --table "0 $sectors delay $LEG2 0 0 $LEG2 0 $DELAY_MS" 2>&1) ||
        fail "dmsetup create $1 (delay) failed: $out"
    MLEG2=/dev/mapper/$1
}

node2() {
    wait_until 240 "node 1 to create the mirror" exists created-1
    # Node 2's second leg is a dm-delay device over the shared disk: its
    # writes reach that leg DELAY_MS late, so the crash below leaves the
    # region being written different on the two legs.
    make_delay_leg n2leg2
    create_mirror
    touch "$SHARED/created-2"
    wait_until 180 "node 1 to start writing" exists writing-1
    say "writing node 2's range; the kernel crashes after $CRASH_AFTER blocks with a second-leg write in flight"
    python3 "$HERE/node2-writer.py" --dev "/dev/mapper/$DM" --pattern "$PAT2" --offset "$R2_OFF" \
        --bs "$BS" --blocks $((R2_LEN / BS)) --shared "$SHARED" --crash-after "$CRASH_AFTER" \
        --watch-dm n2leg2 --limit $((GUEST_LIMIT - SECONDS > 30 ? GUEST_LIMIT - SECONDS - 20 : 10))
    local rc=$?
    fail "node 2 did not crash (node2-writer.py exit $rc; $(node2_blocks) blocks done)"
}


# ------------------------------------------- two-node-whole-cluster-restart ----
#
# Boot 1 (--phase crash): both nodes have a dm-delay second leg and write with
# node2-writer.py (node 1: blocks of [R1_OFF, R1_OFF+R1_LEN), node 2: of
# [R2_OFF, R2_OFF+R2_LEN), each block once, completed blocks recorded in
# nodeN-done.{a,b}). Node 2 crashes first (after CRASH_AFTER blocks, a
# second-leg write held); node 1 keeps writing until corosync shows 1 member
# and it completed NODE1_MORE more blocks, then crashes the same way. Nothing
# is removed: the log device keeps what the daemons last wrote. With
# NODE1_CRASH=soon node 1 crashes as soon as node 2 did (a second-leg write
# held), before corosync notices: node 2's marks are then still on the log.
# Boot 2 (--phase restart): node 1 creates the mirror on the plain legs with
# the same uuid, log device and region size but without nosync, records the
# sync count dmsetup status shows right after the create (first-status-1),
# and waits for N/N; node 2 creates it as soon as node 1 has. Both verify
# (wc_verify): legs identical, every completed block of both nodes right on
# both legs and through the mirror, the unwritten areas zero. Node 1 waits for
# node 2's verdict, removes the mirror last and writes result-1.

node_blocks() { cat "$SHARED"/node"$1"-done.* 2>/dev/null | grep -c '^[0-9]'; }

wc_writer_alive() {
    kill -0 "$WRITER" 2>/dev/null && return 0
    wait "$WRITER"
    fail "node $NODE's writer exited (status $?) before node $NODE crashed; $(node_blocks "$NODE") blocks done; $(grep -h '^error' "$SHARED"/node"$NODE"-done.* 2>/dev/null | head -n 1)"
}
wc_started() { wc_writer_alive; (( $(node_blocks 1) >= 1 )); }
wc_crash2_announced() { wc_writer_alive; exists crashing-2; }
wc_alone() { wc_writer_alive; [[ $(members) == 1 ]]; }
wc_blocks_at_least() { wc_writer_alive; (( $(node_blocks 1) >= $1 )); }

# wc_crash_note TEXT: node 1's notes from the crash boot (it leaves no result).
wc_crash_note() { say "note: $*"; printf '%s\n' "$*" >> "$SHARED/crash-notes-1"; }

wc_node1_crash() {
    make_delay_leg n1leg2
    create_mirror
    touch "$SHARED/created-1"
    wait_until 180 "node 2 to create the mirror" exists created-2
    python3 "$HERE/node2-writer.py" --node 1 --dev "/dev/mapper/$DM" --pattern "$PAT1" --offset "$R1_OFF" \
        --bs "$BS" --blocks $((R1_LEN / BS)) --shared "$SHARED" --crash-after 1 \
        --watch-dm n1leg2 --gate "$W/gate-1" --limit $((GUEST_LIMIT - SECONDS > 30 ? GUEST_LIMIT - SECONDS - 20 : 10)) &
    WRITER=$!
    wait_until 120 "node 1's first completed block" wc_started
    touch "$SHARED/writing-1"
    say "writing node 1's range; node 1 crashes after node 2, once alone and $NODE1_MORE more blocks are done"
    wait_until 240 "node 2 to crash itself" wc_crash2_announced
    local t=$SECONDS b0
    say "node 2 crashes now (it completed $(node_blocks 2) blocks; node 1 $(node_blocks 1))"
    if [[ ${NODE1_CRASH:-alone} == alone ]]; then
        wait_until 120 "corosync on node 1 to show 1 member" wc_alone
        b0=$(node_blocks 1)
        wc_crash_note "corosync on node 1 showed 1 member $((SECONDS - t))s after node 2's crash"
        wait_until 90 "node 1 to complete $NODE1_MORE more blocks" wc_blocks_at_least $((b0 + NODE1_MORE))
    fi
    # (NODE1_CRASH=soon: at once, before corosync notices node 2's absence.)
    wc_crash_note "node 1 crashes $((SECONDS - t))s after node 2 (NODE1_CRASH=${NODE1_CRASH:-alone}; sync count then $(sync_ratio "$DM"), node 1 completed $(node_blocks 1) blocks, node 2 $(node_blocks 2))"
    kill -USR1 "$DAEMON_PID" 2>/dev/null && sleep 0.5    # state dump into the daemon log
    touch "$W/gate-1"
    t=$SECONDS
    while kill -0 "$WRITER" 2>/dev/null && (( SECONDS - t < 60 )); do sleep 0.3; done
    wc_writer_alive
    fail "node 1's writer did not crash the kernel within 60 s of the gate"
}

# wc_watch_sync LIMIT: polls the sync count until N/N; MIN_RATIO is the
# lowest count seen, SYNC_S the seconds it took.
wc_watch_sync() {
    local limit=$1 start=$SECONDS r min=""
    while :; do
        r=$(sync_ratio "$DM")
        if [[ $r =~ ^([0-9]+)/([0-9]+)$ ]]; then
            if [[ -z $min ]] || (( BASH_REMATCH[1] < min )); then min=${BASH_REMATCH[1]}; fi
            (( BASH_REMATCH[1] == BASH_REMATCH[2] && BASH_REMATCH[2] > 0 )) && break
        fi
        [[ -e $ABORT ]] && fail "stopped waiting for $DM to sync: $(head -n 1 "$ABORT")"
        (( SECONDS - start >= limit || SECONDS >= GUEST_LIMIT )) &&
            fail "not in sync ${limit}s after the restart: $(timeout 20 dmsetup status "$DM" 2>&1) (lowest sync count seen ${min:-none})"
        sleep 0.2
    done
    MIN_RATIO=$min/$(regions) SYNC_S=$((SECONDS - start))
}

# wc_create_default: the mirror on the plain legs without nosync; FIRST_RATIO
# is the sync count dmsetup status shows right after the create.
wc_create_default() {
    local table out
    table="0 $LEN mirror userspace 4 $UUID clustered-disk $LOGDEV $REGION 2 $LEG1 0 $LEG2 0"
    say "dmsetup create $DM: $table"
    out=$(timeout 120 dmsetup create "$DM" --table "$table" 2>&1) || fail "dmsetup create (restart) failed: $out"
    FIRST_RATIO=$(sync_ratio "$DM")
    say "created; sync count right after the create: ${FIRST_RATIO:-?}"
    echo "${FIRST_RATIO:-?}" > "$SHARED/first-status-$NODE"
}

# wc_check_blocks N PATTERN OFFSET LENGTH DEV: every block node N recorded as
# completed reads back from DEV as PATTERN's block. Sets CHECKED.
wc_check_blocks() {
    local n=$1 pat=$2 off=$3 len=$4 dev=$5 b out
    CHECKED=0
    dd if="$dev" of="$W/range" bs=1M iflag=direct,skip_bytes,count_bytes skip="$off" count="$len" status=none ||
        fail "cannot read node $n's range from $dev"
    while read -r b; do
        [[ $b =~ ^[0-9]+$ ]] || continue
        out=$(cmp -n "$BS" -i "$((b * BS)):$((b * BS))" "$pat" "$W/range" 2>&1) ||
            fail "after the restart, node $n's completed block $b (byte $((off + b * BS))) is wrong on $dev: $out"
        CHECKED=$((CHECKED + 1))
    done < <(cat "$SHARED"/node"$n"-done.* 2>/dev/null)
    rm -f "$W/range"
}

wc_verify() {
    local out st dev n1=0 n2=0
    out=$(cmp <(dd if="$LEG1" bs=1M iflag=direct count="$LEG_MB" status=none) \
              <(dd if="$LEG2" bs=1M iflag=direct count="$LEG_MB" status=none) 2>&1) ||
        fail "legs differ after the restart resync: $out"
    for dev in "/dev/mapper/$DM" "$LEG1" "$LEG2"; do
        wc_check_blocks 1 "$PAT1" "$R1_OFF" "$R1_LEN" "$dev"; n1=$CHECKED
        wc_check_blocks 2 "$PAT2" "$R2_OFF" "$R2_LEN" "$dev"; n2=$CHECKED
    done
    (( n1 >= 1 && n2 >= CRASH_AFTER )) || fail "too few completed blocks recorded: node 1 $n1, node 2 $n2"
    check_unwritten_zero
    st=$(timeout 20 dmsetup status "$DM" 2>&1)
    [[ $st == *COM_FAILURE* ]] && fail "status shows COM_FAILURE: $st"
    awk '$3 == "mirror" { n = $4; h = $(7 + n); if (h !~ /^A+$/) exit 1 }' <<< "$st" || fail "leg health not all A: $st"
    [[ $st =~ [[:space:]]D$ ]] && fail "log device marked failed (D): $st"
    is_in_sync "$DM" || fail "not in sync after the verification: $st"
    VERIFIED="legs identical; node 1's $n1 and node 2's $n2 completed blocks correct on both legs and through the mirror; unwritten areas zero"
    say "$VERIFIED"
}

wc_node1_restart() {
    wc_create_default
    touch "$SHARED/created-1"
    wc_watch_sync 240
    note "sync count right after the create ${FIRST_RATIO:-?}, lowest seen $MIN_RATIO, in sync after ${SYNC_S}s"
    wait_until 180 "node 2 to create the mirror" exists created-2
    wc_verify
    wait_until 300 "node 2's verdict" exists result-2
    grep -q '^PASS' "$SHARED/result-2" || fail "node 2: $(sed -n '1s/^FAIL //p' "$SHARED/result-2")"
    kill -USR1 "$DAEMON_PID" 2>/dev/null
    sleep 0.5
    finish
    printf 'PASS %s; %s; node 2: %s\n' "$VERIFIED" "$(printf '%s; ' "${NOTES[@]}" | sed 's/; $//')" \
        "$(sed -n '1s/^PASS //p' "$SHARED/result-2")" > "$RESULT"
    dmesg > "$SHARED/dmesg-node1.txt" 2>/dev/null
    say "PASS"
}

wc_node2_restart() {
    wait_until 240 "node 1 to create the mirror" exists created-1
    wc_create_default
    touch "$SHARED/created-2"
    wc_watch_sync 240
    note "sync count right after the create ${FIRST_RATIO:-?}, lowest seen $MIN_RATIO, in sync after ${SYNC_S}s"
    wc_verify
    kill -USR1 "$DAEMON_PID" 2>/dev/null
    sleep 0.5
    finish
    printf 'PASS %s; %s\n' "$VERIFIED" "$(printf '%s; ' "${NOTES[@]}" | sed 's/; $//')" > "$RESULT"
    say "PASS"
}

main() {
    say "node $NODE starting (guest budget ${GUEST_LIMIT}s)"
    setup
    case ${PHASE:-none}/$NODE in
        none/1) node1 ;;
        none/2) node2 ;;
        crash/1) wc_node1_crash ;;
        crash/2) node2 ;;              # the same victim as in two-node-crash-recovery
        restart/1) wc_node1_restart ;;
        restart/2) wc_node2_restart ;;
    esac
}

main; exit $?
