#!/usr/bin/env python3
"""node2-writer.py: a node's writers and its crash, for the two-node tests.

    node2-writer.py --dev DEV --pattern FILE --offset BYTES --bs BYTES --blocks N
                    --shared DIR --crash-after K --watch-dm NAME [--limit SECONDS]
                    [--node M] [--gate FILE]

Two threads write blocks [0, N/2) and [N/2, N) of FILE to DEV at OFFSET + b*BS,
one O_DIRECT pwrite per block, the device kept open (no udev "change" probe
between blocks). After each completed write the block number is appended to
DIR/nodeM-done.a or .b (M is --node, default 2; DIR is a synchronous 9p share:
the line is on the host when the write returns).

Once K blocks are done (and, with --gate, once FILE exists), the kernel is
crashed (sysrq c) at a moment when the dm-delay device NAME (under the mirror's
second leg) has held a write for at least 150 ms without interruption (every
sample in between saw one): the mirror has flushed the region's mark and
written the first leg, and the second leg's copy sits in dm-delay's queue. So
the crash leaves that region different on the two legs, and only a resync
(by a survivor, or at the next activation from the log device) makes them
identical again. DIR/crashing-M is created just before the crash.

Node 2 of two-node-crash-recovery uses it with the defaults; in
two-node-whole-cluster-restart both nodes do (node 1 with --node 1 --gate).

Exit status (only if no crash happened): 3 a write failed, 4 time limit or all
blocks written before the crash moment came.
"""

import argparse
import mmap
import os
import subprocess
import sys
import threading
import time


def delayed_writes(name):
    """Writes dm-delay device NAME holds right now: `dmsetup status` prints
    "<start> <length> delay <reads> <writes> <flushes>" (kernel 6.1). The
    block layer's inflight counters of dm devices stay 0, so they cannot tell."""
    out = subprocess.run(["dmsetup", "status", name], capture_output=True, text=True, timeout=30).stdout.split()
    if len(out) < 5 or out[2] != "delay":
        raise RuntimeError("unexpected dmsetup status for %s: %r" % (name, out))
    return int(out[4])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", required=True)
    ap.add_argument("--pattern", required=True)
    ap.add_argument("--offset", type=int, required=True)
    ap.add_argument("--bs", type=int, required=True)
    ap.add_argument("--blocks", type=int, required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--crash-after", type=int, required=True)
    ap.add_argument("--watch-dm", required=True)
    ap.add_argument("--limit", type=float, default=240.0)
    ap.add_argument("--node", type=int, default=2)
    ap.add_argument("--gate")
    a = ap.parse_args()

    with open(a.pattern, "rb") as f:
        pattern = f.read()
    if len(pattern) < a.blocks * a.bs:
        sys.exit("pattern file too short")

    lock = threading.Lock()
    state = {"done": 0, "error": None}

    def writer(name, first, count):
        buf = mmap.mmap(-1, a.bs)  # page aligned, as O_DIRECT wants
        fd = os.open(a.dev, os.O_WRONLY | os.O_DIRECT)
        with open(os.path.join(a.shared, "node%d-done.%s" % (a.node, name)), "a", buffering=1) as progress:
            for b in range(first, first + count):
                buf[:] = pattern[b * a.bs:(b + 1) * a.bs]
                try:
                    n = os.pwrite(fd, buf, a.offset + b * a.bs)
                    if n != a.bs:
                        raise OSError("short write: %d of %d bytes" % (n, a.bs))
                except OSError as e:
                    progress.write("error %d %s\n" % (b, e))
                    with lock:
                        state["error"] = "block %d: %s" % (b, e)
                    return
                progress.write("%d\n" % b)
                with lock:
                    state["done"] += 1

    half = a.blocks // 2
    threads = [threading.Thread(target=writer, args=("a", 0, half), daemon=True),
               threading.Thread(target=writer, args=("b", half, a.blocks - half), daemon=True)]
    for t in threads:
        t.start()

    start = time.monotonic()
    busy_since = None
    while True:
        now = time.monotonic()
        with lock:
            done, error = state["done"], state["error"]
        if error:
            print("node%d-writer: write failed: %s" % (a.node, error), flush=True)
            return 3
        if now - start > a.limit:
            print("node%d-writer: no crash moment within %.0f s (%d blocks done)" % (a.node, a.limit, done), flush=True)
            return 4
        if delayed_writes(a.watch_dm) > 0:
            if busy_since is None:
                busy_since = now
        else:
            busy_since = None
        gate_open = a.gate is None or os.path.exists(a.gate)
        if done >= a.crash_after and gate_open and busy_since is not None and now - busy_since >= 0.15:
            print("node%d-writer: %d blocks done, a second-leg write in flight for %.0f ms: sysrq c"
                  % (a.node, done, (now - busy_since) * 1000), flush=True)
            open(os.path.join(a.shared, "crashing-%d" % a.node), "w").close()
            with open("/proc/sysrq-trigger", "w") as f:
                f.write("c")
            time.sleep(30)
            print("node%d-writer: still alive 30 s after sysrq c" % a.node, flush=True)
            return 5
        if not any(t.is_alive() for t in threads):
            print("node%d-writer: all %d blocks written before a crash moment came" % (a.node, done), flush=True)
            return 4
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
