#!/usr/bin/env bash
# install-deps.sh — installs what mirrorlogd's tests and demo need on a
# Debian 12 machine (run as root). Idempotent: installs only what is missing,
# and is quick when nothing is.
#
#   Debian: qemu-system-x86 linux-image-amd64 dmsetup udev kmod busybox-static
#           (+ util-linux, coreutils, diffutils, procps, gawk used by the VM scripts)
#           corosync libcpg-dev libquorum-dev libcorosync-common-dev iproute2
#           (Tests/cluster: corosync clusters in network namespaces)
#           python3 (Tests/vm/two-node: the harness and node 2's writer in the guest)
#           libdlm-dev dlm-controld (the DLM: libdlm_lt for the daemon's fencing barrier,
#           dlm_controld and dlm_tool in the VM tests)
#   PyPI:   virtme-ng (the `vng` command that boots the Debian kernel in QEMU)
#
# The Swift toolchain that builds the daemon is not installed here.

set -euo pipefail

if (( EUID != 0 )); then
    echo "install-deps.sh: must run as root" >&2
    exit 1
fi

APT_PKGS=(qemu-system-x86 linux-image-amd64 dmsetup udev kmod busybox-static
          util-linux coreutils diffutils procps
          corosync libcpg-dev libquorum-dev libcorosync-common-dev iproute2 python3
          libdlm-dev dlm-controld)

is_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

missing=()
for p in "${APT_PKGS[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if (( ${#missing[@]} )); then
    echo "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
    for p in "${missing[@]}"; do echo "installed $p"; done
fi

# A Debian kernel with the dm-mirror/dm-log-userspace modules must be in /boot.
have_kernel=0
for img in /boot/vmlinuz-*; do
    [[ -e $img ]] || continue
    ver=${img#/boot/vmlinuz-}
    if compgen -G "/lib/modules/$ver/kernel/drivers/md/dm-log-userspace.ko*" > /dev/null; then
        have_kernel=1
    fi
done
if (( ! have_kernel )); then
    echo "warning: no /boot/vmlinuz-<ver> with dm-log-userspace.ko in /lib/modules/<ver>;" \
         "try: apt-get install --reinstall linux-image-amd64" >&2
fi

# virtme-ng from PyPI (Debian 12 does not package it).
find_vng() {
    command -v vng > /dev/null && return 0
    local d
    for d in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
             /usr/local/bin "$HOME/.local/bin"; do
        [[ -n $d && -x $d/vng ]] && { echo "note: vng is in $d (not on PATH)" >&2; return 0; }
    done
    return 1
}

if ! find_vng; then
    if ! python3 -m pip --version > /dev/null 2>&1; then
        echo "apt: installing python3-pip"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends python3-pip > /dev/null
        echo "installed python3-pip"
    fi
    echo "pip: installing virtme-ng"
    if ! python3 -m pip install -q virtme-ng 2> /tmp/install-deps-pip.err; then
        if grep -q externally-managed /tmp/install-deps-pip.err; then
            # Debian's own python3 refuses plain pip installs (PEP 668).
            python3 -m pip install -q --break-system-packages virtme-ng
        else
            cat /tmp/install-deps-pip.err >&2
            exit 1
        fi
    fi
    rm -f /tmp/install-deps-pip.err
    command -v pyenv > /dev/null && pyenv rehash 2> /dev/null || true
    hash -r
    if find_vng; then
        echo "installed virtme-ng ($(vng --version 2>/dev/null || echo 'vng not on PATH yet'))"
    else
        echo "error: virtme-ng installed but no vng command found" >&2
        exit 1
    fi
fi
