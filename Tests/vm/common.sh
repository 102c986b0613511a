# shellcheck shell=bash
# Host-side helpers shared by run-vm-suite.sh and scripts/demo.sh.

# find_dm_kernel: prints the version of the newest /boot/vmlinuz-* whose
# modules include dm-log-userspace (the running host kernel may have no
# device-mapper and no image in /boot).
find_dm_kernel() {
    local img ver
    while read -r img; do
        ver=${img#/boot/vmlinuz-}
        if compgen -G "/lib/modules/$ver/kernel/drivers/md/dm-log-userspace.ko*" > /dev/null; then
            printf '%s\n' "$ver"
            return 0
        fi
    done < <(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V -r)
    return 1
}

# resolve_daemon_binary REPO: sets BIN to the absolute path of the daemon
# ($MIRRORLOGD_BIN, default REPO/.build/release/mirrorlogd), or says how to
# build it and returns 1.
resolve_daemon_binary() {
    BIN=${MIRRORLOGD_BIN:-$1/.build/release/mirrorlogd}
    if [[ ! -x $BIN ]]; then
        echo "error: daemon binary not found: $BIN" >&2
        echo "       build it first (swift build -c release --product mirrorlogd) or set MIRRORLOGD_BIN" >&2
        return 1
    fi
    BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
}

# require_vm_tools: vng, qemu and a usable kernel, or a clear message.
require_vm_tools() {
    local missing=()
    command -v vng > /dev/null || missing+=("vng (pip install virtme-ng)")
    command -v qemu-system-x86_64 > /dev/null || missing+=("qemu-system-x86_64 (apt qemu-system-x86)")
    command -v timeout > /dev/null || missing+=("timeout (coreutils)")
    if (( ${#missing[@]} )); then
        echo "error: missing: ${missing[*]} — run scripts/install-deps.sh as root" >&2
        return 1
    fi
    if ! KVER=$(find_dm_kernel); then
        echo "error: no /boot/vmlinuz-<ver> with /lib/modules/<ver>/kernel/drivers/md/dm-log-userspace.ko*;" \
             "install linux-image-amd64 (scripts/install-deps.sh)" >&2
        return 1
    fi
    KIMG=/boot/vmlinuz-$KVER
    [[ -r $KIMG ]] || { echo "error: $KIMG is not readable (run as root)" >&2; return 1; }
}

# vm_exec RWDIR TIMEOUT_S CMD: boots the Debian kernel under TCG (KVM is not
# usable here) with the host filesystem as read-only root and RWDIR writable,
# runs CMD in the guest; everything bounded by TIMEOUT_S. Output goes to stdout.
vm_exec() {
    local rwdir=$1 limit=$2 cmd=$3
    timeout -k 20 "$limit" vng --run "$KIMG" --user root --disable-kvm \
        --memory "${VM_MEMORY:-2G}" --cpus "${VM_CPUS:-2}" \
        --rwdir "$rwdir" --exec "$cmd" < /dev/null 2>&1
}
