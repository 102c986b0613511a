# shellcheck shell=bash
# Helpers shared by the guest-side scripts (guest-suite.sh, guest-demo.sh).
# Sourced inside the virtme-ng guest; needs root, dm-mod, dm-mirror, loop.

say() { printf '[suite] %s %s\n' "$(date +%T)" "$*"; }

# load_modules: the device-mapper mirror stack and loop devices.
load_modules() {
    local m
    for m in dm-mod dm-mirror dm-log-userspace; do
        modprobe "$m" || { echo "modprobe $m failed" >&2; return 1; }
    done
    modprobe loop max_loop=32 || { echo "modprobe loop failed" >&2; return 1; }
    # dm-mirror's resync throttle (percent); scenarios lower it temporarily.
    THROTTLE=/sys/module/dm_mirror/parameters/raid1_resync_throttle
}

set_throttle() { [[ -w ${THROTTLE:-} ]] && echo "$1" > "$THROTTLE"; return 0; }

# mirror_table VAR MODE KIND UUID LEN REGION SYNCARG LEG1 LEG2 [LOGDEV] [IFLUSH] [FEATURES]
# Builds a one-line dm-mirror table. MODE "userspace" puts the log behind the
# userspace log type (served by mirrorlogd); MODE "kernel" uses the kernel's own
# core/disk log with the same arguments (self-test of the checks, no daemon).
# KIND: core, disk, clustered-core or clustered-disk.
mirror_table() {
    local -n _out=$1
    local mode=$2 kind=$3 uuid=$4 len=$5 region=$6 syncarg=$7 l1=$8 l2=$9
    local logdev=${10:-} iflush=${11:-} features=${12:-}
    local args=()
    # the kernel's own logs have no clustered types: kernel mode maps
    # clustered-core -> core and clustered-disk -> disk
    [[ $mode == kernel ]] && kind=${kind#clustered-}
    [[ $kind == *disk ]] && args+=("$logdev")
    args+=("$region")
    [[ -n $syncarg ]] && args+=("$syncarg")
    local tail="2 $l1 0 $l2 0"
    [[ -n $features ]] && tail+=" $features"
    if [[ $mode == userspace ]]; then
        local words=("$uuid")
        [[ -n $iflush ]] && words+=(integrated_flush)
        words+=("$kind" "${args[@]}")
        _out="0 $len mirror userspace ${#words[@]} ${words[*]} $tail"
    else
        _out="0 $len mirror $kind ${#args[@]} ${args[*]} $tail"
    fi
}

# sync_ratio NAME: prints "in_sync/total" from dmsetup status (empty on error).
sync_ratio() {
    timeout -k 5 30 dmsetup status "$1" 2>/dev/null |
        awk '$3 == "mirror" { n = $4; print $(5 + n); exit }'
}

# is_in_sync NAME: true when dmsetup status shows N/N.
is_in_sync() {
    local r
    r=$(sync_ratio "$1")
    [[ $r =~ ^([0-9]+)/([0-9]+)$ ]] && (( BASH_REMATCH[2] > 0 && BASH_REMATCH[1] == BASH_REMATCH[2] ))
}

# wait_in_sync NAME TIMEOUT_S: bounded wait for N/N.
wait_in_sync() {
    local name=$1 limit=$2 start=$SECONDS
    while (( SECONDS - start <= limit )); do
        is_in_sync "$name" && return 0
        sleep 0.5
    done
    return 1
}

# daemon_ready PID TIMEOUT_S: waits until a userspace NETLINK_CONNECTOR socket
# has joined multicast group 7 (CN_IDX_DM), i.e. the daemon listens.
netlink_dm_listener() {
    local eth pid groups rest
    while read -r _ eth pid groups rest; do
        [[ $eth == 11 && $pid != 0 && $groups =~ ^[0-9a-fA-F]+$ ]] || continue
        (( 0x$groups & 0x40 )) && return 0
    done < /proc/net/netlink
    return 1
}

# is_disk_kind KIND: true for disk and clustered-disk.
is_disk_kind() { [[ $1 == disk || $1 == clustered-disk ]]; }
# is_clustered_kind KIND: true for clustered-core and clustered-disk.
is_clustered_kind() { [[ $1 == clustered-* ]]; }
