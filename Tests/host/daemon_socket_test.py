#!/usr/bin/env python3
"""Host-level tests of the real mirrorlogd binary through its test transport.

The daemon runs with --kernel-socket: it takes the netlink connector's exact bytes from a Unix
SOCK_SEQPACKET socket, so its whole path (framing, validation, engine, disk I/O, replies, signals,
logging) runs here, on a host whose kernel has no device-mapper. The wire format comes from the shared
Python codec Tests/pylib/ulog_wire.py, written from the uapi layout independently of the Swift codec.

Usage: daemon_socket_test.py <path to mirrorlogd>
Prints one line per test and "N passed, M failed"; exits non-zero on any failure.
"""
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pylib"))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from ulog_wire import (CLEAR, CTR, DTR, EBUSY, EINVAL, ESRCH, FLUSH, GET_REGION_SIZE, GET_RESYNC_WORK,  # noqa: E402
                       GET_SYNC_COUNT, HEADER_BYTES, IN_SYNC, IS_CLEAN, IS_REMOTE_RECOVERING, MARK, PROTOCOL_VERSION,
                       REMOTE_RECOVERING, REQUEST_OFFSET, REQUEST_TYPE_OFFSET, RESUME, RESYNC_WORK, SET_REGION_SYNC,
                       STATUS_INFO, decode_reply, encode_frame, i64, region_sync, u64s)
from socket_daemon import SocketDaemon  # noqa: E402


def Daemon(binary, workdir):
    return SocketDaemon(binary, workdir)


def check(condition, what):
    if not condition:
        raise AssertionError(what)


# ---------------------------------------------------------------- tests ----

def test_core_lifecycle(d):
    u, l = "LVM-host-core", 0x1000
    r = d.request(l, u, CTR, b"131072 core 1024 nosync")
    check(r["error"] == 0 and r["payload"] == b"", f"CTR: {r}")
    check(i64(d.request(l, u, GET_REGION_SIZE)["payload"]) == 1024, "region size")
    check(d.request(l, u, RESUME)["error"] == 0, "resume")
    check(i64(d.request(l, u, GET_SYNC_COUNT)["payload"]) == 128, "nosync: all in sync")
    check(d.request(l, u, MARK, u64s(1, 2))["error"] == 0, "mark")
    check(i64(d.request(l, u, IS_CLEAN, u64s(1))["payload"]) == 0, "marked region not clean")
    check(d.request(l, u, FLUSH)["error"] == 0, "flush")
    check(d.request(l, u, CLEAR, u64s(1, 2))["error"] == 0, "clear")
    check(i64(d.request(l, u, IS_CLEAN, u64s(1))["payload"]) == 1, "cleared region clean")
    check(d.request(l, u, STATUS_INFO)["payload"] == b"1 core", "status info")
    rec, hint = REMOTE_RECOVERING.unpack(d.request(l, u, IS_REMOTE_RECOVERING, u64s(5))["payload"])
    check((rec, hint) == (0, 128), f"is_remote_recovering: {(rec, hint)}")
    check(d.request(l, u, SET_REGION_SYNC, region_sync(7, 0))["error"] == 0, "set_region_sync 0")
    rec, hint = REMOTE_RECOVERING.unpack(d.request(l, u, IS_REMOTE_RECOVERING, u64s(9))["payload"])
    check(hint == 7, f"hint must stop at the out-of-sync region 7, got {hint}")
    found, region = RESYNC_WORK.unpack(d.request(l, u, GET_RESYNC_WORK)["payload"])
    check((found, region) == (1, 7), f"resync work {(found, region)}")
    check(d.request(l, u, DTR)["error"] == 0, "dtr")


def test_integrated_flush_marks(d):
    u, l = "LVM-host-iflush", 0x1001
    d.request(l, u, CTR, b"16384 core 1024 nosync")
    d.request(l, u, RESUME)
    check(d.request(l, u, FLUSH, u64s(3, 4))["error"] == 0, "flush with marks")
    check(i64(d.request(l, u, IS_CLEAN, u64s(3))["payload"]) == 0, "marks in FLUSH payload applied")
    d.request(l, u, DTR)


def test_bad_requests_answered_einval(d):
    u, l = "LVM-host-bad", 0x1002
    d.request(l, u, CTR, b"16384 core 1024")
    r = d.request(l, u, MARK, u64s(16))
    check(r["error"] == -EINVAL, f"out-of-range mark: {r['error']}")
    check(d.logged("names region 16, but the log has 16 regions"), "reason logged")
    d.seq += 1
    d.send_raw(encode_frame(l, u, 99, seq=d.seq))
    r = d.receive()
    check(r["seq"] == d.seq and r["error"] == -EINVAL, f"unknown type: {r}")
    r = d.request(l, u, GET_SYNC_COUNT, version=4)
    check(r["error"] == -EINVAL, "unsupported version")
    r = d.request(l, u, IS_CLEAN, b"\0" * 7)
    check(r["error"] == -EINVAL, "short region payload")
    d.request(l, u, DTR)


def test_malformed_frames_dropped(d):
    u, l = "LVM-host-drop", 0x1003
    d.request(l, u, CTR, b"16384 core 1024")
    good = encode_frame(l, u, GET_SYNC_COUNT, seq=5)
    bad = [good[:30], encode_frame(l, u, GET_SYNC_COUNT, seq=6, cb=(7, 2)),
           good[:REQUEST_OFFSET] + b"\xff" * 160, good[:-1] + b"x" * 5]
    for data in bad:
        d.send_raw(data)
    check(d.request(l, u, GET_SYNC_COUNT)["error"] == 0, "daemon keeps serving after malformed frames")
    check(d.logged("dropped a malformed kernel message"), "drops logged")
    d.request(l, u, DTR)


def test_unknown_log_esrch(d):
    r = d.request(0x9999, "LVM-nobody", FLUSH)
    check(r["error"] == -ESRCH and r["payload"] == b"", f"unknown log: {r}")
    # The kernel reuses the -ESRCH reply's data_size as its buffer for the retry after reconnecting.
    for rtype, size in ((IN_SYNC, 8), (GET_SYNC_COUNT, 8), (GET_RESYNC_WORK, 16), (IS_REMOTE_RECOVERING, 16)):
        payload = u64s(0) if rtype in (IN_SYNC, IS_REMOTE_RECOVERING) else b""
        r = d.request(0x9999, "LVM-nobody", rtype, payload)
        check(r["error"] == -ESRCH and r["payload"] == b"\0" * size, f"type {rtype}: -ESRCH must carry {size} zero bytes, got {r}")
    check(d.request(0x9999, "LVM-nobody", DTR)["error"] == 0, "dtr of unknown log")


def test_bad_constructors(d):
    cases = [(b"131072 bogus 1024", "unknown log type 'bogus'"),
             (b"131072 core 0", "bad region size '0'"),
             (b"131072 core", "missing region size"),
             (b"131072 core 1024 nosync extra", "unknown or extra argument 'extra'"),
             (b"131072 clustered-core 1024", "need corosync"),
             (b"131072 disk /dev/does-not-exist 1024", "cannot use log device /dev/does-not-exist"),
             (b"18446744073709551615 core 1024", "supported; use a larger region size")]
    for i, (text, reason) in enumerate(cases):
        r = d.request(0x2000 + i, f"LVM-host-ctr-{i}", CTR, text)
        check(r["error"] == -EINVAL, f"{text!r} answered {r['error']}")
        check(d.logged(reason), f"reason for {text!r} not logged ({reason})")


def test_reconnect_constructor(d):
    u, l = "LVM-host-reconnect", 0x1004
    r = d.request(l, u, CTR, b"16384 core 1024 nosync\0")  # the kernel's reconnect form
    check(r["error"] == 0 and r["payload"] == b"", "reconnect CTR answered without payload")
    d.request(l, u, RESUME)
    check(i64(d.request(l, u, GET_SYNC_COUNT)["payload"]) == 0, "core state lost: everything resyncs")
    d.request(l, u, DTR)


def test_state_dump(d):
    u, l = "LVM-host-dump", 0x1005
    d.request(l, u, CTR, b"16384 core 1024 nosync")
    d.request(l, u, RESUME)
    d.proc.send_signal(signal.SIGUSR1)
    check(d.logged("in_sync=16/16"), "SIGUSR1 dump shows the log")
    d.request(l, u, DTR)


def test_disk_log_on_loop_device(d, workdir):
    image = os.path.join(workdir, "disklog.img")
    with open(image, "wb") as f:
        f.truncate(1 << 20)
    try:
        loop = subprocess.run(["losetup", "-f", "--show", image], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise SkipTest(f"no loop device: {error}")
    try:
        st = os.stat(loop)
        majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        u, l = "LVM-host-disk", 0x1006
        r = d.request(l, u, CTR, f"131072 disk {majmin} 1024".encode())
        check(r["error"] == 0 and r["payload"] == majmin.encode() + b"\0", f"CTR device name: {r}")
        check(d.request(l, u, RESUME)["error"] == 0, "resume")
        check(d.logged("holds no valid log"), "zeroed device: resync issued")
        for region in range(128):
            d.request(l, u, SET_REGION_SYNC, region_sync(region, 1))
        d.request(l, u, MARK, u64s(9))
        check(d.request(l, u, FLUSH)["error"] == 0, "flush")
        with open(image, "rb") as f:
            data = f.read(2048)
        magic, version, regions = struct.unpack_from("<IIQ", data, 0)
        check((magic, version, regions) == (0x4D695272, 2, 128), f"header {(hex(magic), version, regions)}")
        bits = int.from_bytes(data[1024:1024 + 16], "little")
        check(bits == ((1 << 128) - 1) & ~(1 << 9), f"on-disk clean bits {bits:032x}")
        check(d.request(l, u, STATUS_INFO)["payload"] == f"3 disk {majmin} A".encode(), "status")
        r = d.request(l + 1, "LVM-host-disk-other", CTR, f"131072 disk {loop} 1024".encode())
        check(r["error"] == -EBUSY, "a second log on the same device is refused")
        check(d.request(l, u, DTR)["error"] == 0, "dtr")
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def test_fuzzed_frames_keep_the_daemon_serving(d):
    """Mutated, truncated and extended frames of every non-CTR type (seeded, bounded): after each one
    the daemon must still answer a probe on an untouched log correctly."""
    import random
    rng = random.Random(0x5EED)
    u, l = "LVM-host-fuzz-probe", 0x7777
    d.request(l, u, CTR, b"16384 core 1024 nosync")
    d.request(l, u, RESUME)
    bases = [encode_frame(0x4242, "LVM-fuzz", t, p, seq=1) for t, p in
             ((MARK, u64s(1, 2, 3)), (CLEAR, u64s(4)), (FLUSH, u64s(5)), (IS_CLEAN, u64s(1)),
              (SET_REGION_SYNC, region_sync(2, 1)), (IS_REMOTE_RECOVERING, u64s(9)),
              (GET_RESYNC_WORK, b""), (STATUS_INFO, b""), (DTR, b""))]
    d.conn.settimeout(10)
    for i in range(1500):
        data = bytearray(rng.choice(bases))
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            if op < 0.6 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif op < 0.8:
                data = data[:rng.randrange(len(data) + 1)]
            else:
                data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        if len(data) >= HEADER_BYTES and data[REQUEST_TYPE_OFFSET] == CTR:
            continue  # keep the fuzzer from creating logs of arbitrary sizes
        if not data:
            continue
        d.send_raw(bytes(data))
        d.seq += 1
        probe_seq = d.seq
        d.send_raw(encode_frame(l, u, GET_SYNC_COUNT, seq=probe_seq))
        for _ in range(4):  # the fuzzed frame may or may not have been answered first
            reply = d.receive()
            if reply["seq"] == probe_seq and reply["luid"] == l:
                break
        else:
            raise AssertionError(f"no answer to the probe after fuzz case {i}")
        check(reply["error"] == 0 and i64(reply["payload"]) == 16, f"probe answered wrongly after fuzz case {i}: {reply}")
    check(d.proc.poll() is None, "daemon died under fuzzing")
    d.request(l, u, DTR)


def mirrorlogctl(binary, workdir, *args, user=None):
    """Runs mirrorlogctl (built beside the daemon) against the daemon's control socket."""
    ctl = os.path.join(os.path.dirname(binary), "mirrorlogctl")
    if not os.access(ctl, os.X_OK):
        raise SkipTest(f"{ctl} is not built")
    cmd = [ctl, "status", "--socket", os.path.join(workdir, "nodes", "ctl.sock"), *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def test_control_socket_status(d, binary, workdir):
    """mirrorlogctl status: exit 0 healthy, 1 degraded (a log still to resync), the text and the JSON."""
    r = d.request(0x5000, "LVM-host-status-nosync", CTR, b"131072 core 1024 nosync")
    check(r["error"] == 0, "nosync CTR")
    check(d.request(0x5000, "LVM-host-status-nosync", RESUME)["error"] == 0, "RESUME")
    out = mirrorlogctl(binary, workdir)
    check(out.returncode == 0, f"healthy: exit {out.returncode}, stderr {out.stderr!r}")
    check(out.stdout.startswith("node corosync:"), f"node paragraph missing: {out.stdout!r}")
    check("LVM-host-status-nosync type:core state:running" in out.stdout and "in-sync:128/128" in out.stdout,
          f"log paragraph missing: {out.stdout!r}")
    r = d.request(0x5001, "LVM-host-status-sync", CTR, b"131072 core 1024")
    check(r["error"] == 0, "CTR of a log to resync")
    check(d.request(0x5001, "LVM-host-status-sync", RESUME)["error"] == 0, "RESUME")
    out = mirrorlogctl(binary, workdir)
    check(out.returncode == 1, f"a log to resync is degraded: exit {out.returncode}")
    check("in-sync:0/128" in out.stdout, f"sync count: {out.stdout!r}")
    out = mirrorlogctl(binary, workdir, "--json")
    check(out.returncode == 1, f"--json exit {out.returncode}")
    report = json.loads(out.stdout)
    uuids = {log["uuid"]: log for log in report["logs"]}
    check(report["schema"] == 1 and report["node"]["fencing"] == "dlm", f"schema/node: {report['node']}")
    check(uuids["LVM-host-status-sync"]["inSync"] == 0 and uuids["LVM-host-status-nosync"]["inSync"] == 128,
          f"inSync in the JSON: {uuids}")
    out = mirrorlogctl(binary, workdir, user=65534)
    check(out.returncode == 4 and "cannot reach mirrorlogd" in out.stderr,
          f"a non-root user is refused (exit {out.returncode}, {out.stderr!r})")
    check(d.request(0x5000, "LVM-host-status-nosync", DTR)["error"] == 0, "DTR")
    check(d.request(0x5001, "LVM-host-status-sync", DTR)["error"] == 0, "DTR")


def test_single_instance(binary, workdir):
    pidfile = os.path.join(workdir, "mirrorlogd.pid")
    r = subprocess.run([binary, "-f", "--pidfile", pidfile, "--kernel-socket", os.path.join(workdir, "second.sock")],
                       capture_output=True, text=True, timeout=20)
    check(r.returncode != 0, "second instance started")
    check("another mirrorlogd holds" in r.stdout + r.stderr, f"second instance gave no reason: {r.stdout}{r.stderr}")


class SkipTest(Exception):
    pass


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = os.path.abspath(sys.argv[1])
    workdir = tempfile.mkdtemp(prefix="mirrorlogd-host.")
    passed = failed = 0
    daemon = Daemon(binary, workdir)
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    try:
        for name, fn in tests:
            try:
                if name in ("test_disk_log_on_loop_device",):
                    fn(daemon, workdir)
                elif name == "test_control_socket_status":
                    fn(daemon, binary, workdir)
                elif name == "test_single_instance":
                    fn(binary, workdir)
                else:
                    fn(daemon)
                print(f"PASS {name}")
                passed += 1
            except SkipTest as why:
                print(f"SKIP {name}: {why}")
            except Exception as error:  # noqa: BLE001 - report every failure the same way
                print(f"FAIL {name}: {error}")
                failed += 1
        check_alive = daemon.proc.poll() is None
        if not check_alive:
            print("FAIL daemon: it exited during the tests")
            failed += 1
    finally:
        daemon.stop()
        if failed:
            print("---- daemon log (tail) ----")
            print("\n".join(open(daemon.log_path).read().splitlines()[-30:]))
    # The daemon is gone: mirrorlogctl says so with exit 4.
    try:
        out = mirrorlogctl(binary, workdir)
        ok = out.returncode == 4 and "cannot reach mirrorlogd" in out.stderr
        print(f"{'PASS' if ok else 'FAIL'} test_control_daemon_gone" + ("" if ok else f": exit {out.returncode} {out.stderr!r}"))
        passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
    except SkipTest as why:
        print(f"SKIP test_control_daemon_gone: {why}")
    subprocess.run(["rm", "-rf", workdir], check=False)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
