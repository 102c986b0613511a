#!/usr/bin/env bash
# run-two-node.sh — real-kernel two-node test of mirrorlogd's clustered-disk log.
#
#   Tests/vm/two-node/run-two-node.sh [--keep] [--whole-cluster] [MIRRORLOGD_BIN]
#
# Boots two virtme-ng guests (QEMU/TCG, the Debian kernel) linked by a QEMU
# socket netdev, both attached to the same three raw image files (two mirror
# legs and the log device, virtio-blk, cache=none). Each guest runs corosync
# (two_node votequorum) and mirrorlogd, and activates the same `clustered-disk`
# mirror. Both write disjoint ranges; node 2 crashes its kernel (sysrq c) with
# writes in flight; node 1 keeps writing, waits until the mirror is in sync
# again and checks the legs and the data (guest-node.sh). The host then checks
# the image files again.
#
# With --whole-cluster it runs two-node-whole-cluster-restart instead
# (whole-cluster.sh): both nodes write, node 2 crashes, then node 1 (writes in
# flight on both), and both guests boot again on the same image files and
# re-create the mirror without nosync. The host counts the regions the log
# device marks dirty between the two boots (only those may be resynced;
# bounds at WC_MAX_DIRTY below) and checks that every region where the legs
# differ is among them; the second boot checks the resync and every completed
# block of both nodes on both legs and through the mirror.
#
#   MIRRORLOGD_BIN     daemon binary if not given as argument
#                      (default <repo>/.build/release/mirrorlogd; not built here)
#   TWO_NODE_TIMEOUT   seconds for the whole test (default 600; 900 with
#                      --whole-cluster)
#   TWO_NODE_WC_NODE1_CRASH  --whole-cluster: when node 1 crashes after node 2:
#                      alone (default: once corosync shows it alone and it
#                      wrote 4 more blocks) or soon (at once, with node 2's
#                      marks still on the log device)
#   --keep             keep the results directory even when the test passed
#
# Prints "PASS <test> ..." or "FAIL <test>: <reason>" (<test> is
# two-node-crash-recovery or two-node-whole-cluster-restart) and exits
# 0 / 1 (2: cannot run). Progress goes to stderr. On a
# failure the results directory (consoles, both daemons' and corosyncs' logs,
# node 1's dmesg) is kept and its path printed; the images are always deleted.

set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
# shellcheck source=Tests/vm/common.sh
source "$HERE/../common.sh"

TEST=two-node-crash-recovery
KEEP=0 WHOLE=0
while (( $# )); do
    case $1 in
        --keep) KEEP=1; shift ;;
        --whole-cluster) WHOLE=1; TEST=two-node-whole-cluster-restart; shift ;;
        -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "unknown option: $1" >&2; exit 2 ;;
        *) MIRRORLOGD_BIN=$1; shift ;;
    esac
done

(( EUID == 0 )) || { echo "run-two-node.sh: must run as root" >&2; exit 2; }
resolve_daemon_binary "$REPO" || exit 2
require_vm_tools || exit 2
for t in ss python3 cmp od; do
    command -v "$t" > /dev/null || { echo "run-two-node.sh: $t is missing (scripts/install-deps.sh)" >&2; exit 2; }
done

LIMIT=${TWO_NODE_TIMEOUT:-$(( WHOLE ? 900 : 600 ))}
VM_LIMIT=$((LIMIT - 40))            # each VM; the host's checks and cleanup fit in the rest
GUEST_LIMIT=$((VM_LIMIT - 60))      # the guest script's own budget (boot takes ~20-60 s)
MB=$((1024 * 1024))
LEG_MB=64 REGION=1024 BS=$((256 * 1024))
R1_OFF=0 R1_LEN=$((8 * MB))         # node 1: [0, 8 MiB), regions 0-15
R2_OFF=$((32 * MB)) R2_LEN=$((16 * MB))  # node 2: [32, 48 MiB), regions 64-95
CRASH_AFTER=24                      # of node 2's 64 blocks
PAT1_LEN=$((2 * R1_LEN))            # node 1 writes passes alternating two halves
if (( WHOLE )); then
    # Both nodes write each block once (node2-writer.py), both second legs are
    # 1 s dm-delay devices, so each writer thread completes at most one block
    # per second: node 1's 160 blocks (2 threads) last at least 80 s, enough
    # for node 2's crash after 16 blocks (>= 8 s), corosync's failure detection
    # (12-18 s measured) and NODE1_MORE more blocks; the runs so far crashed
    # node 1 after 40-70 blocks.
    R1_OFF=0 R1_LEN=$((40 * MB))            # node 1: regions 0-79
    R2_OFF=$((44 * MB)) R2_LEN=$((16 * MB)) # node 2: regions 88-119
    CRASH_AFTER=16 NODE1_MORE=4 PAT1_LEN=$R1_LEN
    NODE1_CRASH=${TWO_NODE_WC_NODE1_CRASH:-alone}
    [[ $NODE1_CRASH == alone || $NODE1_CRASH == soon ]] ||
        { echo "run-two-node.sh: TWO_NODE_WC_NODE1_CRASH must be alone or soon" >&2; exit 2; }
fi

log() { printf '[host] %s %s\n' "$(date +%T)" "$*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mirrorlogd-2node.XXXXXX")
chmod 755 "$WORK"
SH=$WORK/shared IMG=$WORK/img
mkdir -p "$SH" "$IMG"
chmod 755 "$SH"
declare -A VMPID=()
PASSED=0

# descendants PID: PID and all its descendants (children first).
descendants() {
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do descendants "$c"; done
    echo "$1"
}

# our_qemus: qemu processes whose command line names our unique results dir.
our_qemus() {
    local p
    for p in /proc/[0-9]*; do
        [[ $(cat "$p/comm" 2>/dev/null) == qemu-system* ]] || continue
        tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -qF -- "path=$SH," && echo "${p#/proc/}"
    done
    return 0
}

# kill_vm N: QEMU first, so that vng (its parent) reaps it and exits; then
# whatever of node N's process tree is left.
kill_vm() {
    local n=$1 p pids qemus=() i
    [[ -n ${VMPID[$n]:-} ]] || return 0
    pids=$(descendants "${VMPID[$n]}")
    for p in $pids; do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == qemu-system* ]] && qemus+=("$p")
    done
    if (( ${#qemus[@]} )); then
        kill -KILL "${qemus[@]}" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "${VMPID[$n]}" 2>/dev/null || break; sleep 0.1; done
    fi
    pids=$(descendants "${VMPID[$n]}")
    # shellcheck disable=SC2086
    [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
    wait "${VMPID[$n]}" 2>/dev/null
    VMPID[$n]=""
}

cleanup() {
    local p i
    trap - EXIT INT TERM HUP
    kill_vm 1
    kill_vm 2
    for i in 1 2 3 4 5; do
        p=$(our_qemus)
        [[ -z $p ]] && break
        # shellcheck disable=SC2086
        kill -KILL $p 2>/dev/null
        sleep 0.5
    done
    [[ -n $(our_qemus) ]] && log "warning: qemu processes $(our_qemus) survived SIGKILL"
    rm -rf -- "$IMG"
    rm -f -- "$SH/pat1" "$SH/pat2" "$SH/mirrorlogd"
    if (( PASSED && ! KEEP )); then
        rm -rf -- "$WORK"
    else
        log "results kept in $SH (console-node*.log, mirrorlogd-node*.log, corosync-node*.log, dmesg-node1.txt)"
    fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM HUP

# ------------------------------------------------------------- prepare ----

T0=$SECONDS
truncate -s "${LEG_MB}M" "$IMG/leg1.img" "$IMG/leg2.img"
truncate -s 1M "$IMG/log.img"
head -c "$PAT1_LEN" /dev/urandom > "$SH/pat1"
head -c "$R2_LEN" /dev/urandom > "$SH/pat2"
cp "$BIN" "$SH/mirrorlogd"          # a rebuild during the run cannot change it
pick_port() { PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); }
pick_port
RUNID=${WORK##*.}
# write_config: config.sh for the guests (GUEST_LIMIT is per boot).
write_config() {
    cat > "$SH/config.sh" <<EOF
UUID=mlt2node-$RUNID
DM=mlt2
LEG_MB=$LEG_MB REGION=$REGION BS=$BS
R1_OFF=$R1_OFF R1_LEN=$R1_LEN R2_OFF=$R2_OFF R2_LEN=$R2_LEN
CRASH_AFTER=$CRASH_AFTER DELAY_MS=${TWO_NODE_DELAY_MS:-1000}
NET=192.168.77 MAC1=52:54:00:77:00:01 MAC2=52:54:00:77:00:02
TOKEN_MS=${TWO_NODE_TOKEN_MS:-5000}
GUEST_LIMIT=$GUEST_LIMIT
FENCING=$( ((WHOLE)) && echo off || echo on)
EOF
    (( WHOLE )) && echo "SCENARIO=whole-cluster NODE1_MORE=$NODE1_MORE NODE1_CRASH=$NODE1_CRASH" >> "$SH/config.sh"
    return 0
}
write_config

# start_vm N [PHASE]: boots node N in the background (VMPID[N]); PHASE
# (crash|restart, two-node-whole-cluster-restart only) goes to guest-node.sh
# and names the console log.
start_vm() {
    local n=$1 phase=${2:-} mode=listen opts cmd
    (( n == 2 )) && mode=connect
    opts="-netdev socket,id=cl0,$mode=127.0.0.1:$PORT -device virtio-net-pci,netdev=cl0,mac=52:54:00:77:00:0$n"
    local i=0 disk
    for disk in leg1:mltleg1 leg2:mltleg2 log:mltlog; do
        i=$((i + 1))
        opts+=" -drive file=$IMG/${disk%%:*}.img,format=raw,if=none,id=d$i,cache=none,file.locking=off"
        opts+=" -device virtio-blk-pci,drive=d$i,share-rw=on,serial=${disk#*:}"
    done
    cmd="bash $(printf '%q' "$HERE/guest-node.sh") --node $n --shared $(printf '%q' "$SH")"
    [[ -n $phase ]] && cmd+=" --phase $phase"
    timeout -k 15 "$VM_LIMIT" vng --run "$KIMG" --name "mlt-node$n" --user root --disable-kvm \
        --memory 1G --cpus 1 --rwdir "$SH" --exec "$cmd" --qemu-opts="$opts" \
        < /dev/null > "$SH/console-node$n${phase:+-$phase}.log" 2>&1 &
    VMPID[$n]=$!
    log "node $n: vng pid ${VMPID[$n]} (netdev socket $mode 127.0.0.1:$PORT)"
}

alive() { [[ -n ${VMPID[$1]:-} ]] && kill -0 "${VMPID[$1]}" 2>/dev/null; }

REASON=""
NOTES=()
hnote() { NOTES+=("$*"); log "$*"; }

log "kernel $KIMG, daemon $BIN; results in $SH; limit ${LIMIT}s"
if (( WHOLE )); then
    # shellcheck source=Tests/vm/two-node/whole-cluster.sh
    source "$HERE/whole-cluster.sh"
    whole_cluster
    exit $?
fi
start_vm 1
# node 2 connects to node 1's socket: wait until QEMU listens.
t=$SECONDS
until ss -Hltn "( sport = :$PORT )" 2>/dev/null | grep -q .; do
    if ! alive 1; then REASON="node 1's VM exited before it listened on 127.0.0.1:$PORT"; break; fi
    if (( SECONDS - t > 60 )); then REASON="node 1's QEMU did not listen on 127.0.0.1:$PORT within 60 s"; break; fi
    sleep 0.2
done
[[ -z $REASON ]] && start_vm 2

# ------------------------------------------------------------- monitor ----

CRASH_AT="" VM2_END=""
deadline=$((T0 + LIMIT - 30))
while [[ -z $REASON ]] && alive 1; do
    if [[ -z $CRASH_AT && -e $SH/crashing-2 ]]; then
        CRASH_AT=$SECONDS
        log "node 2 announced its crash"
    fi
    if [[ -z $VM2_END ]] && ! alive 2; then
        wait "${VMPID[2]}" 2>/dev/null
        rc=$?
        VM2_END=$SECONDS
        VMPID[2]=""
        if [[ -n $CRASH_AT ]]; then
            hnote "node 2's QEMU exited $((VM2_END - CRASH_AT))s after the crash (vng exit $rc)"
        else
            log "node 2's VM exited (vng exit $rc) without announcing a crash"
        fi
    fi
    # Fencing: node 1's dlm_controld asks (through its fence agent) for node 2 to be killed; the
    # harness kills node 2's QEMU if it still runs, and answers once it is gone.
    if [[ -e $SH/fence-request-2 && ! -e $SH/fenced-2 ]]; then
        if alive 2; then
            kill_vm 2
            VM2_END=${VM2_END:-$SECONDS}
        fi
        : > "$SH/fenced-2"
        FENCED_AT=$SECONDS
        hnote "fenced node 2 at node 1's request$([[ -n $CRASH_AT ]] && echo ", $((SECONDS - CRASH_AT))s after the crash")"
    fi
    if [[ -n $CRASH_AT && -z $VM2_END ]] && (( SECONDS - CRASH_AT > 60 )); then
        kill_vm 2
        VM2_END=$SECONDS
        hnote "node 2's QEMU still ran 60 s after the crash; killed"
    fi
    if (( SECONDS > deadline )); then
        REASON="time limit: node 1 did not finish within $((deadline - T0))s"
        break
    fi
    sleep 0.5
done
if [[ -n ${VMPID[1]:-} ]] && ! alive 1; then
    wait "${VMPID[1]}" 2>/dev/null
    VM1_RC=$?
    VMPID[1]=""
fi
kill_vm 1
kill_vm 2

# --------------------------------------------------------------- verdict ----

if [[ -z $REASON ]]; then
    if [[ ! -s $SH/result-1 ]]; then
        REASON="node 1 gave no result (vng exit ${VM1_RC:-?})"
        [[ -s $SH/abort ]] && REASON+="; abort: $(head -n 1 "$SH/abort")"
    elif ! grep -q '^PASS' "$SH/result-1"; then
        REASON="$(sed -n '1s/^FAIL //p' "$SH/result-1")"
    elif [[ -z $CRASH_AT ]]; then
        REASON="node 1 passed but node 2 never announced its crash"
    elif [[ -z ${FENCED_AT:-} ]]; then
        REASON="node 1 passed but its dlm_controld never asked to fence node 2 (see fence-log, dlm-node1/dlm_controld.log)"
    elif ! grep -q 'recovery generation 1 done' "$SH/mirrorlogd-node1.log" 2>/dev/null; then
        REASON="node 1 passed but its daemon logged no completed recovery (recover_done after the DLM's grant)"
    else
        hnote "node 1's daemon: $(grep -ac 'holding this node.s DLM lock' "$SH/mirrorlogd-node1.log") DLM lock taken; recovery done after the fencing: $(grep -a 'recovery generation 1 done' "$SH/mirrorlogd-node1.log" | head -n 1 | cut -c1-160)"
    fi
fi

# The host's own look at the image files (what reached the shared disks).
host_checks() {
    local out last b nb=0
    out=$(cmp "$IMG/leg1.img" "$IMG/leg2.img" 2>&1) || { REASON="host: leg images differ: $out"; return; }
    last=$(cat "$SH/last-pass-1" 2>/dev/null)
    [[ $last =~ ^[0-9]+$ ]] || { REASON="host: node 1 did not record its last pass"; return; }
    out=$(cmp -n "$R1_LEN" -i "$(((last % 2) * R1_LEN)):$R1_OFF" "$SH/pat1" "$IMG/leg1.img" 2>&1) ||
        { REASON="host: node 1's range on the leg image is not pass $last's data: $out"; return; }
    while read -r b; do
        [[ $b =~ ^[0-9]+$ ]] || continue
        out=$(cmp -n "$BS" -i "$((b * BS)):$((R2_OFF + b * BS))" "$SH/pat2" "$IMG/leg1.img" 2>&1) ||
            { REASON="host: node 2's completed block $b is wrong on the leg image: $out"; return; }
        nb=$((nb + 1))
    done < <(cat "$SH"/node2-done.* 2>/dev/null)
    (( nb >= CRASH_AFTER )) || { REASON="host: only $nb completed node-2 blocks recorded"; return; }
    # On-disk log: header magic "MiRr" (little endian) and clean bits after node 1 removed the mirror.
    local magic bits dirty=0 byte i nreg=$(((LEG_MB * 2048 + REGION - 1) / REGION))
    magic=$(od -An -tx1 -N4 "$IMG/log.img" | tr -d ' \n')
    read -r -a bits <<< "$(od -An -v -tu1 -j1024 -N$(((nreg + 7) / 8)) "$IMG/log.img" | tr '\n' ' ')"
    for ((i = 0; i < nreg; i++)); do
        byte=${bits[i / 8]:-0}
        (( ((byte >> (i % 8)) & 1) == 0 )) && dirty=$((dirty + 1))
    done
    if [[ $magic == 7252694d ]]; then
        hnote "host: leg images identical, node 1's data and $nb node-2 blocks correct; on-disk log valid, $dirty of $nreg regions dirty after the remove"
    else
        hnote "host: leg images identical, node 1's data and $nb node-2 blocks correct; on-disk log header magic is $magic (not MiRr)"
    fi
}
[[ -z $REASON ]] && host_checks

ELAPSED=$((SECONDS - T0))
if [[ -z $REASON ]]; then
    PASSED=1
    log "node 1: $(head -n 1 "$SH/result-1")"
    echo "PASS $TEST (${ELAPSED}s)"
    exit 0
fi

{
    for n in 1 2; do
        echo "---- tail of node $n's console ($SH/console-node$n.log) ----"
        tail -n 25 "$SH/console-node$n.log" 2>/dev/null | sed 's/\r$//'
    done
    for n in 1 2; do
        echo "---- node $n's daemon: warnings and errors ($SH/mirrorlogd-node$n.log) ----"
        grep -aE '^(warning|error|critical)' "$SH/mirrorlogd-node$n.log" 2>/dev/null | tail -n 15
        echo "---- tail of node $n's corosync log ----"
        tail -n 8 "$SH/corosync-node$n.log" 2>/dev/null
    done
} >&2
echo "FAIL $TEST: $REASON (${ELAPSED}s)"
exit 1
