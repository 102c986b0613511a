# shellcheck shell=bash
# The DLM in a virtme-ng guest: the dlm kernel module, its device nodes and dlm_controld, for the
# fencing barrier of clustered logs. Sourced inside the guest (root), after corosync runs and is
# quorate. Needs say() from lib.sh.
#
#   start_dlm RESULTS_DIR [FENCING]   FENCING: "off" (default) or "on" (dlm.conf then has
#                                    enable_fencing=1 and fence_all $FENCE_AGENT)
#   stop_dlm
#   dlm_locks                        the lockspace's locks, one line each (dlm_tool lockdebug)
#
# The guest's root is the host's, read-only: /etc/dlm and dlm_controld's run directories get a
# tmpfs when they are not writable. No udev runs, so the misc device nodes that libdlm opens
# (/dev/misc/dlm-control, dlm-monitor, dlm_plock) are made from /sys/class/misc/*/dev.

DLMC_PID=""
DLM_OK=0

# writable_dir DIR: DIR exists and is writable (a tmpfs over it if the root is read-only).
writable_dir() {
    local d=$1
    if mkdir -p "$d" 2>/dev/null && touch "$d/.w" 2>/dev/null; then
        rm -f "$d/.w"
        return 0
    fi
    mount -t tmpfs tmpfs "$d"
}

dlm_status_ready() {
    timeout -k 2 5 dlm_tool status 2>/dev/null | grep -q '^cluster nodeid [0-9]* quorate 1'
}

start_dlm() {
    local res=$1 fencing=${2:-off} d n devno
    for d in /etc/dlm /var/log/dlm_controld /run/dlm_controld; do
        writable_dir "$d" || { say "cannot make $d writable"; return 1; }
    done
    [[ -d /sys/kernel/config ]] || modprobe configfs || { say "modprobe configfs failed"; return 1; }
    mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config || { say "cannot mount configfs"; return 1; }
    modprobe dlm || { say "modprobe dlm failed"; return 1; }
    # virtme-ng's guest runs udevd, whose 51-dlm.rules make the nodes; without udev, make them here.
    timeout -k 2 10 udevadm settle -t 8 2>/dev/null || true
    for n in dlm-control dlm-monitor dlm_plock; do
        [[ -e /dev/misc/$n ]] && continue
        devno=$(cat "/sys/class/misc/$n/dev" 2>/dev/null) || { say "no /sys/class/misc/$n/dev"; return 1; }
        mkdir -p /dev/misc
        mknod -m 0600 "/dev/misc/$n" c "${devno%%:*}" "${devno##*:}" 2>/dev/null || [[ -e /dev/misc/$n ]] ||
            { say "mknod /dev/misc/$n failed"; return 1; }
    done
    if [[ $fencing == on ]]; then
        cat > /etc/dlm/dlm.conf <<EOF
enable_fencing=1
enable_startup_fencing=0
enable_quorum_fencing=0
enable_plock=0
fence_all ${FENCE_AGENT:?FENCE_AGENT must name the fence agent}
EOF
    else
        cat > /etc/dlm/dlm.conf <<EOF
enable_fencing=0
enable_startup_fencing=0
enable_quorum_fencing=0
enable_plock=0
EOF
    fi
    cp /etc/dlm/dlm.conf "$res/dlm.conf"
    # Command-line options win over dlm.conf (dlm_controld logs cli_set); fence_all has none.
    local opts=(--foreground 1 --log_debug 1 --enable_startup_fencing 0 --enable_quorum_fencing 0 --enable_plock 0)
    [[ $fencing == on ]] || opts+=(--enable_fencing 0)
    dlm_controld "${opts[@]}" < /dev/null >> "$res/dlm_controld.log" 2>&1 &
    DLMC_PID=$!
    local start=$SECONDS
    while (( SECONDS - start < 60 )); do
        kill -0 "$DLMC_PID" 2>/dev/null || { say "dlm_controld exited at start (see dlm_controld.log)"; return 1; }
        if dlm_status_ready; then
            DLM_OK=1
            say "dlm_controld ready after $((SECONDS - start)) s (fencing $fencing)"
            return 0
        fi
        sleep 0.5
    done
    say "dlm_controld not ready after 60 s: $(timeout -k 2 5 dlm_tool status 2>&1 | tr '\n' ' ')"
    return 1
}

stop_dlm() {
    [[ -n $DLMC_PID ]] || return 0
    local i
    kill -TERM "$DLMC_PID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$DLMC_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$DLMC_PID" 2>/dev/null && kill -KILL "$DLMC_PID" 2>/dev/null
    DLMC_PID=""
    DLM_OK=0
}

# dlm_locks: the resources of lockspace mirrorlogd with their granted and waiting locks (empty when
# the lockspace does not exist).
dlm_locks() {
    timeout -k 2 10 dlm_tool lockdebug -v mirrorlogd 2>/dev/null
}
