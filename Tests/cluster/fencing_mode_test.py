#!/usr/bin/env python3
"""The fencing barrier's refusals on a real corosync cluster (two nodes in network namespaces), with the real daemon binary.

This host's kernel has no DLM. So a daemon started with its default (the DLM barrier) must refuse
every clustered constructor, say why in its log, and keep serving local logs. A daemon started with
--no-fencing must serve the clustered log, warn at start, and say `fencing mode=none` in its state dump.

Usage: fencing_mode_test.py <path to mirrorlogd>     (root; uses Tests/cluster/netns-cluster.sh)
Prints one line per check and "N passed, M failed"; exits non-zero on any failure.
"""
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "pylib"))
sys.dont_write_bytecode = True
from socket_daemon import SocketDaemon  # noqa: E402
from ulog_wire import CTR, DTR, EINVAL, RESUME  # noqa: E402

PREFIX = "mldfm-"
NETNS = str(HERE / "netns-cluster.sh")
ENV = dict(os.environ, CLUSTER_PREFIX=PREFIX)
results = {"passed": 0, "failed": 0}


def check(condition, what):
    results["passed" if condition else "failed"] += 1
    print(f"{'PASS' if condition else 'FAIL'} {what}", flush=True)


def netns(*args, timeout=100):
    return subprocess.run([NETNS, *args], env=ENV, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def Daemon(binary, workdir, extra):
    """mirrorlogd inside node 1's namespaces, on the test transport."""
    return SocketDaemon(binary, workdir, extra_args=extra, launcher=(NETNS, "exec", "1"), env=ENV)


def main():
    if len(sys.argv) != 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="mlt-fencing-")
    r = netns("up", "2")   # the harness makes 2 to 5 nodes; node 2 stays idle
    try:
        if r.returncode != 0:
            check(False, f"one-node corosync cluster up: {r.stderr.strip()[-400:]}")
            return
        # Default: the DLM barrier; this kernel has no DLM.
        d = Daemon(binary, os.path.join(tmp, "dlm"), [])
        try:
            reply = d.request(1, "LVM-fencing-clustered", CTR, b"131072 clustered-core 1024")
            check(reply["error"] == -EINVAL, f"without a DLM, a clustered constructor is refused (answered {reply['error']})")
            check(d.logged("clustered logs need the DLM for fencing, and it cannot be used (", timeout=10),
                  "the refusal says why, in the log")
            reply = d.request(2, "LVM-fencing-local", CTR, b"131072 core 1024")
            check(reply["error"] == 0, "a local core log is still served")
            check(d.request(2, "LVM-fencing-local", RESUME)["error"] == 0, "its RESUME is answered")
            check(d.request(2, "LVM-fencing-local", DTR)["error"] == 0, "its DTR is answered")
        finally:
            d.stop()
        # --no-fencing: served, warned at start, and shown in the state dump.
        d = Daemon(binary, os.path.join(tmp, "nofence"), ["--no-fencing"])
        try:
            check(d.logged("running WITHOUT fencing", timeout=10), "--no-fencing is warned about at start")
            reply = d.request(3, "LVM-fencing-unfenced", CTR, b"131072 clustered-core 1024")
            check(reply["error"] == 0, f"with --no-fencing the clustered constructor is served (answered {reply['error']})")
            check(d.request(3, "LVM-fencing-unfenced", RESUME)["error"] == 0, "its RESUME is answered")
            d.signal(signal.SIGUSR1)
            check(d.logged("fencing mode=none", timeout=10), "the state dump shows fencing mode=none")
            check(d.request(3, "LVM-fencing-unfenced", DTR)["error"] == 0, "its DTR is answered")
        finally:
            d.stop()
    finally:
        netns("down", timeout=90)
        subprocess.run(["rm", "-rf", tmp])
        print(f"{results['passed']} passed, {results['failed']} failed", flush=True)
    sys.exit(1 if results["failed"] else 0)


if __name__ == "__main__":
    main()
