# shellcheck shell=bash
# whole-cluster.sh — host side of two-node-whole-cluster-restart, sourced by
# run-two-node.sh --whole-cluster (which owns the results directory, the image
# files, start_vm/kill_vm and the cleanup trap that kills every QEMU and deletes
# the images on every exit path).
#
# Boot 1 ("crash"): both guests create the mirror (nosync, fresh zeroed legs),
# both write with dm-delay second legs; node 2 crashes with a second-leg write
# held, node 1 keeps writing until corosync shows it alone, then crashes the
# same way. Nothing is removed, nothing is shut down.
# Between the boots (both QEMUs gone) the host reads the image files: the log
# device's header and clean bitmap (the dirty regions are what the restart may
# resync) and the legs region by region (where they differ).
# Boot 2 ("restart"): both guests boot on the same image files and re-create
# the mirror without nosync; the guests check the resync and the data, the host
# then the image files once more.

WC_BOOT_GRACE=60      # seconds a crashed guest's QEMU may take to exit before it is killed

# wc_inspect: reads the log image and the leg images (no guest runs). Sets
# WC_MAGIC (the header's u32 magic in hex, 4d695272 = "MiRr"),
# WC_VERSION, WC_NR (nr_regions of the header), WC_DIRTY (region numbers whose
# clean bit is 0, among the first NREG) and WC_DIFF (regions where the legs
# differ).
wc_inspect() {
    local out
    out=$(python3 - "$IMG/log.img" "$IMG/leg1.img" "$IMG/leg2.img" "$NREG" "$REGION" <<'PY'
import struct, sys
log, leg1, leg2, nreg, region = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with open(log, "rb") as f:
    data = f.read(1024 + (nreg + 7) // 8)
magic, version, nr = struct.unpack_from("<IIQ", data, 0)
bits = data[1024:]
dirty = [r for r in range(nreg) if not (bits[r // 8] >> (r % 8)) & 1]
size = region * 512
diff = []
with open(leg1, "rb") as a, open(leg2, "rb") as b:
    for r in range(nreg):
        if a.read(size) != b.read(size):
            diff.append(r)
print("WC_MAGIC=%08x WC_VERSION=%d WC_NR=%d" % (magic, version, nr))
print("WC_DIRTY='%s'" % " ".join(map(str, dirty)))
print("WC_DIFF='%s'" % " ".join(map(str, diff)))
PY
) || { REASON="host: cannot read the image files: $out"; return 1; }
    eval "$out"
}

# wc_ranges LIST: "a-b c" compression of a sorted list of region numbers.
wc_ranges() {
    awk '{ for (i = 1; i <= NF; i++) { if (i > 1 && $i == p + 1) { p = $i; continue }
                                      if (i > 1) printf "%s%s", (s == p ? s : s "-" p), " "
                                      s = p = $i }
           if (NF) printf "%s", (s == p ? s : s "-" p) }' <<< "$1"
}

# wc_boot PHASE LIMIT_S: boots both guests with --phase PHASE and watches them
# until both exited (a guest that announced its crash gets WC_BOOT_GRACE
# seconds to exit, then its QEMU is killed) or LIMIT_S passed. Both QEMUs are
# gone when it returns. Sets REASON on a time-out.
declare -A WC_CRASH=() WC_END=()
wc_boot() {
    local phase=$1 limit=$2 n rc t start=$SECONDS
    WC_CRASH=() WC_END=()
    VM_LIMIT=$((limit + 20)) GUEST_LIMIT=$((limit - 40))
    pick_port
    write_config
    log "boot '$phase': both guests (limit ${limit}s)"
    start_vm 1 "$phase"
    t=$SECONDS
    until ss -Hltn "( sport = :$PORT )" 2>/dev/null | grep -q .; do
        if ! alive 1; then REASON="$phase boot: node 1's VM exited before it listened on 127.0.0.1:$PORT"; break; fi
        if (( SECONDS - t > 60 )); then REASON="$phase boot: node 1's QEMU did not listen on 127.0.0.1:$PORT within 60 s"; break; fi
        sleep 0.2
    done
    [[ -z $REASON ]] && start_vm 2 "$phase"
    while [[ -z $REASON ]] && { alive 1 || alive 2; }; do
        for n in 1 2; do
            if [[ -z ${WC_CRASH[$n]:-} && -e $SH/crashing-$n ]]; then
                WC_CRASH[$n]=$SECONDS
                log "node $n announced its crash"
            fi
            if [[ -z ${WC_END[$n]:-} && -n ${VMPID[$n]:-} ]] && ! alive "$n"; then
                wait "${VMPID[$n]}" 2>/dev/null
                rc=$?
                WC_END[$n]=$SECONDS
                VMPID[$n]=""
                if [[ -n ${WC_CRASH[$n]:-} ]]; then
                    log "node $n's QEMU exited $((WC_END[$n] - WC_CRASH[$n]))s after its crash (vng exit $rc)"
                else
                    log "node $n's VM exited (vng exit $rc)"
                fi
            fi
            if [[ -n ${WC_CRASH[$n]:-} && -z ${WC_END[$n]:-} ]] && (( SECONDS - WC_CRASH[$n] > WC_BOOT_GRACE )); then
                kill_vm "$n"
                WC_END[$n]=$SECONDS
                hnote "node $n's QEMU still ran ${WC_BOOT_GRACE}s after its crash; killed"
            fi
        done
        if (( SECONDS - start > limit )); then
            REASON="time limit: the $phase boot did not end within ${limit}s"
            break
        fi
        sleep 0.5
    done
    kill_vm 1
    kill_vm 2
    # A guest's QEMU exits within a second of its crash: look at the markers once more.
    for n in 1 2; do
        [[ -z ${WC_CRASH[$n]:-} && -e $SH/crashing-$n ]] && WC_CRASH[$n]=${WC_END[$n]:-$SECONDS}
    done
    [[ -z $REASON ]]
}

# wc_resync_work N: distinct regions node N's kernel got as resync work in the
# restart boot (GET_RESYNC_WORK replies in the daemon's --debug log after its
# second "started" line).
wc_resync_work() {
    awk '/^=== mirrorlogd node .* started/ { boot++ } boot >= 2 && /GET_RESYNC_WORK .*resyncWork\(Optional\(/ {
             s = $0; sub(/.*resyncWork\(Optional\(/, "", s); sub(/\).*/, "", s); print s }' \
        "$SH/mirrorlogd-node$1.log" 2>/dev/null | sort -n -u | tr '\n' ' ' | sed 's/ $//'
}

# wc_resume_count: the sync count node 1's daemon gave its kernel in the
# restart boot after RESUME and before the first SET_REGION_SYNC (what the log
# device made of the regions before any resync; empty if the log has none).
wc_resume_count() {
    awk '/^=== mirrorlogd node .* started/ { boot++ } boot < 2 { next }
         /RESUME seq=.* -> error=0/ { resumed = 1 }
         resumed && /SET_REGION_SYNC seq=/ { exit }
         resumed && /GET_SYNC_COUNT seq=.* -> error=0 count\(/ {
             s = $0; sub(/.*count\(/, "", s); sub(/\).*/, "", s); print s; exit }' \
        "$SH/mirrorlogd-node1.log" 2>/dev/null
}

# wc_in LIST X: X is in the space-separated LIST.
wc_in() { [[ " $1 " == *" $2 "* ]]; }

whole_cluster() {
    local r d ndiff first n1 n2 outside="" undirtied="" boot1_limit work w extra="" missing="" b out nb
    NREG=$(((LEG_MB * 2048 + REGION - 1) / REGION))
    WC_MAX_DIRTY=$((NREG / 4))

    # ---- boot 1: write on both nodes, crash node 2, then node 1 ----
    boot1_limit=$((LIMIT / 2))
    wc_boot crash "$boot1_limit"
    if [[ -z $REASON ]]; then
        if [[ -s $SH/abort ]]; then
            REASON="crash boot: $(head -n 1 "$SH/abort")"
        elif [[ -z ${WC_CRASH[2]:-} || -z ${WC_CRASH[1]:-} ]]; then
            REASON="crash boot: not both nodes announced their crash (crashing-1: $([[ -n ${WC_CRASH[1]:-} ]] && echo yes || echo no), crashing-2: $([[ -n ${WC_CRASH[2]:-} ]] && echo yes || echo no))"
        elif (( WC_CRASH[1] < WC_CRASH[2] )); then
            REASON="crash boot: node 1 crashed before node 2"
        fi
    fi
    [[ -s $SH/crash-notes-1 ]] && while read -r r; do hnote "node 1 (crash boot): $r"; done < "$SH/crash-notes-1"
    [[ -z $REASON ]] && hnote "crash boot: node 2 crashed, node 1 $((WC_CRASH[1] - WC_CRASH[2]))s later; completed blocks: node 1 $(cat "$SH"/node1-done.* 2>/dev/null | grep -c '^[0-9]'), node 2 $(cat "$SH"/node2-done.* 2>/dev/null | grep -c '^[0-9]')"

    # ---- between the boots: what the log device and the legs say ----
    if [[ -z $REASON ]] && wc_inspect; then
        read -r -a r <<< "$WC_DIRTY"; d=${#r[@]}
        WC_DIRTY_BEFORE=$WC_DIRTY
        read -r -a r <<< "$WC_DIFF"; ndiff=${#r[@]}
        for r in $WC_DIRTY; do
            (( (r * REGION * 512 >= R1_OFF && r * REGION * 512 < R1_OFF + R1_LEN) ||
               (r * REGION * 512 >= R2_OFF && r * REGION * 512 < R2_OFF + R2_LEN) )) || outside+=" $r"
        done
        for r in $WC_DIFF; do wc_in "$WC_DIRTY" "$r" || undirtied+=" $r"; done
        hnote "after both crashes the log device marks $d of $NREG regions dirty ($(wc_ranges "$WC_DIRTY")); the legs differ in $ndiff region(s) ($(wc_ranges "$WC_DIFF"))"
        if [[ $WC_MAGIC != 4d695272 || $WC_VERSION != 2 || $WC_NR != "$NREG" ]]; then
            REASON="the log device has no valid header after both crashes (magic $WC_MAGIC, version $WC_VERSION, nr_regions $WC_NR; expected 4d695272, 2, $NREG): a restart cannot know which regions were dirty"
        elif (( d == 0 )); then
            REASON="the log device marks no region dirty, though both nodes crashed with writes in flight (node 1 with a write held in its second leg's dm-delay queue, whose mark the mirror flushed before issuing it)"
        elif (( d > WC_MAX_DIRTY )); then
            REASON="the log device marks $d of $NREG regions dirty after both crashes (more than $WC_MAX_DIRTY; two writer threads per node can hold only a few): $(wc_ranges "$WC_DIRTY")"
        elif [[ -n $undirtied ]]; then
            REASON="the legs differ in region(s)$undirtied, which the log device marks clean: a restart will not resync them (dirty: $(wc_ranges "$WC_DIRTY"))"
        elif [[ -n $outside ]]; then
            REASON="the log device marks region(s)$outside dirty, which no node wrote (node 1: [$R1_OFF, $((R1_OFF + R1_LEN))), node 2: [$R2_OFF, $((R2_OFF + R2_LEN))) bytes)"
        fi
        (( ndiff == 0 )) && hnote "the legs are identical after both crashes (the held second-leg writes' first-leg copies did not reach the disk either): the restart's resync has nothing to repair"
    fi

    # ---- boot 2: the same disks, the mirror re-created without nosync ----
    if [[ -z $REASON ]]; then
        mkdir -p "$SH/crash-boot"
        for r in ready-1 ready-2 created-1 created-2 writing-1 crashing-1 crashing-2 crash-notes-1 quorum-node1.txt quorum-node2.txt dmesg-node1.txt dmesg-node2.txt; do
            [[ -e $SH/$r ]] && mv -f "$SH/$r" "$SH/crash-boot/"
        done
        wc_boot restart $((T0 + LIMIT - 40 - SECONDS))
    fi
    if [[ -z $REASON ]]; then
        if [[ ! -s $SH/result-1 ]]; then
            REASON="restart boot: node 1 gave no result"
            [[ -s $SH/abort ]] && REASON+="; abort: $(head -n 1 "$SH/abort")"
        elif ! grep -q '^PASS' "$SH/result-1"; then
            REASON="restart boot: $(sed -n '1s/^FAIL //p' "$SH/result-1")"
        fi
    fi
    if [[ -z $REASON ]]; then
        first=$(cat "$SH/first-status-1" 2>/dev/null)
        if [[ $first =~ ^([0-9]+)/([0-9]+)$ ]]; then
            hnote "restart: node 1's sync count right after the create was $first (the log device had $((NREG - d))/$NREG clean)"
            (( BASH_REMATCH[1] >= NREG - d )) ||
                REASON="restart: right after the create node 1's kernel counted only $first regions in sync, but the log device had only $d dirty: clean regions are resynced too"
        else
            REASON="restart: no sync count from node 1 right after the create (first-status-1: ${first:-missing})"
        fi
    fi
    if [[ -z $REASON ]]; then
        # dmsetup create takes seconds under TCG, so the resync of a few regions
        # may be over before dmsetup status can ask; the daemon's debug log has
        # the count its kernel got right after the resume.
        first=$(wc_resume_count)
        if [[ $first =~ ^[0-9]+$ ]]; then
            hnote "restart: node 1's daemon answered GET_SYNC_COUNT with $first/$NREG after the resume, before any resync (expected $((NREG - d))/$NREG)"
            (( first == NREG - d )) ||
                REASON="restart: after the resume node 1's daemon counted $first/$NREG regions in sync, but the log device had $((NREG - d)) clean and $d dirty"
        else
            hnote "restart: node 1's daemon log has no GET_SYNC_COUNT reply between RESUME and the first SET_REGION_SYNC"
        fi
    fi
    if [[ -z $REASON ]]; then
        # Which regions the kernels got as resync work (the daemons' debug logs).
        n1=$(wc_resync_work 1) n2=$(wc_resync_work 2)
        work=$(printf '%s\n' $n1 $n2 | sort -n -u | tr '\n' ' ' | sed 's/ $//')
        for w in $work; do wc_in "$WC_DIRTY" "$w" || extra+=" $w"; done
        for w in $WC_DIRTY; do wc_in "$work" "$w" || missing+=" $w"; done
        read -r -a r <<< "$work"
        hnote "restart: resync work handed out for ${#r[@]} region(s) ($(wc_ranges "$work"); node 1's kernel: $(wc_ranges "$n1"), node 2's: $(wc_ranges "$n2"))"
        [[ -n $extra ]] && REASON="restart: region(s)$extra were resynced though the log device marked them clean (dirty: $(wc_ranges "$WC_DIRTY"))"
        [[ -n $missing ]] && hnote "restart: dirty region(s)$missing were never handed out as resync work (the legs are identical anyway: checked)"
    fi

    # ---- the host's own look at the image files after the restart ----
    if [[ -z $REASON ]]; then
        if ! out=$(cmp "$IMG/leg1.img" "$IMG/leg2.img" 2>&1); then
            REASON="host: leg images differ after the restart: $out"
        else
            nb=0
            for n in 1 2; do
                local pat=$SH/pat$n off=$R1_OFF
                (( n == 2 )) && off=$R2_OFF
                while read -r b; do
                    [[ $b =~ ^[0-9]+$ ]] || continue
                    out=$(cmp -n "$BS" -i "$((b * BS)):$((off + b * BS))" "$pat" "$IMG/leg1.img" 2>&1) ||
                        { REASON="host: node $n's completed block $b is wrong on the leg image: $out"; break 2; }
                    nb=$((nb + 1))
                done < <(cat "$SH"/node$n-done.* 2>/dev/null)
            done
        fi
        if [[ -z $REASON ]]; then
            wc_inspect || true
            read -r -a r <<< "$WC_DIRTY"
            hnote "host: leg images identical, $nb completed blocks of both nodes correct; after the removes the log device marks ${#r[@]} region(s) dirty (header magic $WC_MAGIC)"
        fi
    fi

    ELAPSED=$((SECONDS - T0))
    if [[ -z $REASON ]]; then
        PASSED=1
        log "node 1: $(head -n 1 "$SH/result-1")"
        echo "PASS $TEST: $d of $NREG regions dirty on the log device after both crashes ($(wc_ranges "$WC_DIRTY_BEFORE"); the legs differed in $ndiff), and only they resynced at the restart; legs identical, every completed block correct (${ELAPSED}s)"
        return 0
    fi
    {
        for r in "$SH"/console-node*.log; do
            [[ -e $r ]] || continue
            echo "---- tail of $r ----"
            tail -n 25 "$r" 2>/dev/null | sed 's/\r$//'
        done
        for n in 1 2; do
            echo "---- node $n's daemon: warnings and errors ($SH/mirrorlogd-node$n.log) ----"
            grep -aE '^(warning|error|critical)' "$SH/mirrorlogd-node$n.log" 2>/dev/null | tail -n 15
        done
    } >&2
    echo "FAIL $TEST: $REASON (${ELAPSED}s)"
    return 1
}
