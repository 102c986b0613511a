#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs every test: unit tests, then the real-kernel
# end-to-end suite in a virtme-ng VM. Exits non-zero on any failure.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "== installing dependencies"
bash scripts/install-deps.sh

echo "== building mirrorlogd (release)"
swift build -c release --product mirrorlogd

echo "== unit tests"
swift test 2>&1 | tee /tmp/mirrorlogd-unit-tests.log | grep -vE '^(\[[0-9]+/[0-9]+\]|Compiling|Building|Emitting|Write )' || true
if ! grep -qE 'Test run with [0-9]+ tests? (in [0-9]+ suites? )?passed' /tmp/mirrorlogd-unit-tests.log; then
    echo "unit tests failed"
    exit 1
fi

echo "== daemon tests on this host (test socket transport, loop device)"
python3 Tests/host/daemon_socket_test.py "$repo/.build/release/mirrorlogd"

echo "== real-kernel end-to-end suite (QEMU/TCG, takes several minutes)"
MIRRORLOGD_BIN="$repo/.build/release/mirrorlogd" bash Tests/vm/run-vm-suite.sh
bash Tests/vm/two-node/run-two-node.sh "$repo/.build/release/mirrorlogd"   # two guests, corosync, a node crash
