#!/usr/bin/env bash
# demo.sh — mirrorlogd serving a real dm-mirror in the real kernel.
#
# This machine's kernel has no device-mapper, so the demo boots the Debian
# kernel in QEMU (virtme-ng, TCG, ~20 s to boot), starts mirrorlogd inside,
# creates a mirror with a `disk` log and a full resync, writes data, shows the
# sync progress and the final status, checks the legs, and tears down.
#
#   MIRRORLOGD_BIN   daemon binary (default <repo>/.build/release/mirrorlogd);
#                    build it first. Run as root; scripts/install-deps.sh
#                    installs qemu, the Debian kernel and virtme-ng.
#   DEMO_TIMEOUT     seconds for the whole VM run (default 420)

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=Tests/vm/common.sh
source "$REPO/Tests/vm/common.sh"

resolve_daemon_binary "$REPO" || exit 2
require_vm_tools || exit 2

RES=$(mktemp -d "${TMPDIR:-/tmp}/mirrorlogd-demo.XXXXXX")
chmod 755 "$RES"
trap 'rm -rf "$RES"' EXIT

echo "mirrorlogd demo: booting $KIMG in QEMU (TCG, no KVM), about 20-30 s..."
q() { printf '%q' "$1"; }
set +e
vm_exec "$RES" "${DEMO_TIMEOUT:-420}" \
    "bash $(q "$REPO/Tests/vm/guest-demo.sh") --results $(q "$RES") --bin $(q "$BIN")" |
    sed -u 's/\r$//'
rc=${PIPESTATUS[0]}
set -e

if [[ -f $RES/demo-ok ]]; then
    echo
    echo "demo finished: OK"
    exit 0
fi
echo
echo "demo FAILED (vng exit $rc)"
if [[ -f $RES/mirrorlogd.log ]]; then
    echo "---- tail of the daemon log ----"
    tail -n 30 "$RES/mirrorlogd.log"
fi
exit 1
