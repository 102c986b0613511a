#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root), builds mirrorlogd and runs the demo: a VM with the real
# kernel, a mirror served by mirrorlogd, writes, resync progress, status, teardown.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/install-deps.sh
swift build -c release --static-swift-stdlib --product mirrorlogd
swift build -c release --static-swift-stdlib --product mirrorlogctl
MIRRORLOGD_BIN="$repo/.build/release/mirrorlogd" bash scripts/demo.sh
