#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) and runs every test: unit and simulation tests, the
# daemon on this host, real corosync clusters in network namespaces (fault suite and benchmark), then
# the real-kernel suites in virtme-ng VMs. Exits non-zero on any failure.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

echo "== installing dependencies"
bash scripts/install-deps.sh

echo "== building mirrorlogd, mirrorlogctl and the cluster benchmark tool (release, Swift runtime linked statically as installed on a node)"
swift build -c release --static-swift-stdlib --product mirrorlogd
swift build -c release --static-swift-stdlib --product mirrorlog-cpgbench
swift build -c release --static-swift-stdlib --product mirrorlogctl

echo "== unit tests"
swift test 2>&1 | tee /tmp/mirrorlogd-unit-tests.log | grep -vE '^(\[[0-9]+/[0-9]+\]|Compiling|Building|Emitting|Write )' || true
if ! grep -qE 'Test run with [0-9]+ tests? (in [0-9]+ suites? )?passed' /tmp/mirrorlogd-unit-tests.log; then
    echo "unit tests failed"
    exit 1
fi

echo "== cluster simulation: 10,000 seeds (Docs/simulation.md)"
swift build -c release --static-swift-stdlib --product mirrorlog-sim
.build/release/mirrorlog-sim --count 10000 --known Tests/simulation/known-failures.txt --tail 60

echo "== daemon tests on this host (test socket transport, loop device)"
python3 Tests/host/daemon_socket_test.py "$repo/.build/release/mirrorlogd"

echo "== corosync clusters in network namespaces: harness self-test"
bash Tests/cluster/netns-cluster.sh selftest

echo "== clustered logs on a real 3-node corosync cluster: fault suite"
bash Tests/cluster/run-multinode.sh "$repo/.build/release/mirrorlogd"

echo "== clustered logs without a DLM: refused with the reason by default, served with --no-fencing"
python3 Tests/cluster/fencing_mode_test.py "$repo/.build/release/mirrorlogd"

echo "== clustered logs: benchmark (ordered requests beside the raw CPG round trip)"
bash Tests/cluster/bench-cluster.sh "$repo/.build/release/mirrorlogd" "$repo/.build/release/mirrorlog-cpgbench" 2

echo "== real-kernel end-to-end suite, every log type (QEMU/TCG, about 35-45 minutes on an idle machine)"
MIRRORLOGD_BIN="$repo/.build/release/mirrorlogd" VM_TIMEOUT=3400 bash Tests/vm/run-vm-suite.sh

echo "== real-kernel two-node test (two guests, corosync, a node crash)"
bash Tests/vm/two-node/run-two-node.sh "$repo/.build/release/mirrorlogd"

echo "== real-kernel two-node whole-cluster restart (both nodes crash, both boot again on the same disks)"
bash Tests/vm/two-node/run-two-node.sh --whole-cluster "$repo/.build/release/mirrorlogd"
