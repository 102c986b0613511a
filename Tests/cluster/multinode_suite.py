#!/usr/bin/env python3
"""Multi-node fault suite for mirrorlogd's clustered logs (orchestrator + checker).

Runs a real 3-node corosync cluster in network namespaces (netns-cluster.sh, prefix `mldms-`), one
mirrorlogd per node with its test transport (`--kernel-socket`), and on the host one dm-raid1-like
driver per node (raid1_driver.py) over several clustered logs at once. Every request is recorded and the
history is checked (checker.py) after each fault scenario:

  s1-kill-daemon    kill -9 of node 3's daemon under load; restart; the driver reconnects as the kernel does
  s2-kill-corosync  kill -9 of node 2's corosync; restart it; node 2's daemon rejoins (or exits and is restarted)
  s3-partition      node 3 cut off under load (1,2 keep quorum, 3 holds); heal
  s4-rejoin         node 3 removes its logs cleanly and stops; restarts and re-creates them under load

Usage:
  multinode_suite.py --binary PATH [--scenarios s1,s2,s3,s4] [--deadline 300] [--request-timeout 8] ...
  multinode_suite.py --binary PATH --self-check     # one local daemon, `core`/`disk` logs, no cluster
  multinode_suite.py --unit-self-test               # the checker's and the wire client's unit self-tests only

Prints one PASS/FAIL line per scenario and exits non-zero on any failure. Every wait is bounded by its
own limit and by the global deadline; daemons, the cluster (`down`), the loop device and the temp dir
are cleaned up on every path.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import checker  # noqa: E402
import ulog  # noqa: E402
from raid1_driver import DriverConfig, LogSpec, NodeDriver, SharedView, split_ranges  # noqa: E402
from ulog import (CLEAR, FLUSH, GET_SYNC_COUNT, IN_SYNC, MARK, Recorder, u64s, wait_for_socket)  # noqa: E402

PREFIX = "mldms-"
CLUSTER_STATE_RE = re.compile(r"cluster-state uuid=(\S+)")
FIELD_RES = {"members": re.compile(r"\bmembers=(\d+)"), "digest": re.compile(r"\bdigest=([0-9a-fA-F]{16})\b"),
             "sync": re.compile(r"\bsync=(\d+)/(\d+)")}
SUMMARY_RE = re.compile(r"(\S+) luid=\d+ type=\S+ .*\bin_sync=(\d+)/(\d+)")
CRASH_RE = re.compile(r"Fatal error|Segmentation fault|^critical ", re.M)


def parse_state_line(line, clustered):
    """One line of a SIGUSR1 dump -> (uuid, (members, digest, in_sync, regions)), or None.

    Clustered logs: the line contains `cluster-state uuid=<uuid>` and the fields `members=<k>`,
    `digest=<16 hex digits>`, `sync=<a>/<N>` (any order, anything around them); a line that names a uuid
    but lacks a field gives (uuid, ("unparsable", line)). Non-clustered logs (self-check): the existing
    summary `<uuid> luid=... type=... in_sync=<a>/<N>`."""
    if clustered:
        m = CLUSTER_STATE_RE.search(line)
        if not m:
            return None
        fields = {name: rx.search(line) for name, rx in FIELD_RES.items()}
        if not all(fields.values()):
            return m.group(1), ("unparsable", line.strip())
        return m.group(1), (int(fields["members"].group(1)), fields["digest"].group(1).lower(),
                            int(fields["sync"].group(1)), int(fields["sync"].group(2)))
    m = SUMMARY_RE.search(line)
    return (m.group(1), (1, "-", int(m.group(2)), int(m.group(3)))) if m else None


def parse_self_test():
    failures = []
    cases = [("info [s1-c1] cluster-state uuid=LVM-x-c1 members=3 digest=0123456789abcdef sync=256/256 marks=0", True,
              ("LVM-x-c1", (3, "0123456789abcdef", 256, 256))),
             ("info cluster-state uuid=LVM-y sync=10/20 digest=FEDCBA9876543210 members=2", True,
              ("LVM-y", (2, "fedcba9876543210", 10, 20))),
             ("info cluster-state uuid=LVM-z members=3 digest=0123 sync=1/2", True,
              ("LVM-z", ("unparsable", "info cluster-state uuid=LVM-z members=3 digest=0123 sync=1/2"))),
             ("info [c1] LVM-x-c1 luid=5 type=core phase=resumed regions=256x1024 in_sync=256/256 resyncing=0", False,
              ("LVM-x-c1", (1, "-", 256, 256))),
             ("info state dump: 3 log(s); requests: ...", True, None)]
    for line, clustered, want in cases:
        got = parse_state_line(line, clustered)
        if got != want:
            failures.append(f"parse_state_line({line!r}) = {got}, want {want}")
    return failures


class DeadlineExceeded(Exception):
    pass


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def bound(self, seconds):
        left = self.left()
        if left <= 0:
            raise DeadlineExceeded("the suite's global deadline passed")
        return max(0.0, min(seconds, left))

    def sleep(self, seconds):
        time.sleep(self.bound(seconds))


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def wait_until(predicate, timeout, deadline, interval=0.1):
    end = time.monotonic() + deadline.bound(timeout)
    while True:
        if predicate():
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(interval)


# --------------------------------------------------------------- cluster ----

class Cluster:
    """netns-cluster.sh with our prefix; every call bounded."""

    def __init__(self, script, prefix=PREFIX):
        self.script = script
        self.env = dict(os.environ, CLUSTER_PREFIX=prefix)
        self.prefix = prefix
        self.is_up = False

    def run(self, *args, timeout=60, check=True):
        try:
            r = subprocess.run([self.script, *map(str, args)], env=self.env, capture_output=True, text=True,
                               timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"netns-cluster.sh {' '.join(map(str, args))} timed out after {timeout}s") from None
        if check and r.returncode != 0:
            raise RuntimeError(f"netns-cluster.sh {' '.join(map(str, args))} failed ({r.returncode}): {r.stderr.strip()[-800:]}")
        return r

    def state_file(self):
        return os.path.join(os.environ.get("TMPDIR", "/tmp"), f"netns-cluster-{self.prefix.rstrip('-')}-state")

    def up(self, n, deadline):
        if os.path.exists(self.state_file()):
            log(f"a cluster with prefix {self.prefix} is left over; taking it down first")
            self.down()
        self.is_up = True  # even a failed up may leave things: down cleans
        r = self.run("up", n, timeout=deadline.bound(100))
        log(r.stdout.strip())

    def down(self):
        try:
            self.run("down", timeout=90, check=False)
        except RuntimeError as error:
            log(f"down: {error}")
        self.is_up = False

    def wait_members(self, node, members, quorum, timeout, deadline):
        secs = int(max(1, deadline.bound(timeout)))
        r = self.run("wait-members", node, members, quorum, secs, timeout=secs + 15, check=False)
        return r.returncode == 0

    def launcher(self, node):
        return [self.script, "exec", str(node)]


# ---------------------------------------------------------------- daemon ----

class Daemon:
    """One mirrorlogd, started directly (self-check) or inside a node with `netns-cluster.sh exec K`."""

    def __init__(self, binary, node, workdir, launcher=(), env=None, extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.node = node
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.sock = os.path.join(workdir, "kernel.sock")
        self.pidfile = os.path.join(workdir, "mirrorlogd.pid")
        self.rt = os.path.join(workdir, "rt")
        self.launcher = list(launcher)
        self.env = env
        self.proc = None
        self.pid = None
        self.incarnation = 0
        self.log_path = None
        self.logs = []
        self.logfile = None

    def start(self, deadline, timeout=20):
        if self.alive():
            raise RuntimeError(f"node {self.node}: daemon already running (pid {self.pid})")
        self.incarnation += 1
        self.log_path = os.path.join(self.dir, f"mirrorlogd.{self.incarnation}.log")
        self.logs.append(self.log_path)
        if self.logfile:
            self.logfile.close()
        self.logfile = open(self.log_path, "w")
        for stale in (self.pidfile,):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
        # This host's kernel has no DLM: the namespace cluster runs without the fencing barrier
        # (the DLM is tested in VMs, Tests/vm/dlm).
        cmd = self.launcher + [self.binary, "-f", "--debug", "--no-fencing", "--kernel-socket", self.sock, "--pidfile", self.pidfile,
                               "--runtime-directory", self.rt] + self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=self.logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env, start_new_session=True)
        self.pid = None
        end = time.monotonic() + deadline.bound(timeout)
        while time.monotonic() < end:
            pid = self._read_pid()
            if pid and self._is_mirrorlogd(pid):
                self.pid = pid
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if self.pid is None or not wait_for_socket(self.sock, max(0.1, end - time.monotonic()), self.alive):
            raise RuntimeError(f"node {self.node}: mirrorlogd did not start; log tail:\n{self.tail()}")
        return self.pid

    def _read_pid(self):
        try:
            with open(self.pidfile) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (OSError, ValueError):
            return None

    @staticmethod
    def _is_mirrorlogd(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return False
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        state = stat[stat.rindex(")") + 2:].split()[0]
        return comm.startswith("mirrorlogd") and state != "Z"

    def alive(self):
        return self.pid is not None and self._is_mirrorlogd(self.pid)

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)
            return True
        return False

    def wait_exit(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                self._reap(1)
                return True
            time.sleep(0.05)
        return False

    def _reap(self, timeout):
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        """Ends the daemon on every path: SIGTERM twice (forced exit), then SIGKILL."""
        if self.alive():
            for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
                self.signal(sig)
                if self.wait_exit(wait):
                    break
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # our own launcher's session only
            except OSError:
                pass
            self._reap(5)
        if self.logfile:
            self.logfile.close()
            self.logfile = None

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except (OSError, TypeError):
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_path, errors="replace") as f:
                f.seek(offset)
                return f.read()
        except (OSError, TypeError):
            return ""

    def tail(self, n=25):
        lines = []
        for path in self.logs[-2:]:
            try:
                with open(path, errors="replace") as f:
                    lines += [f"  n{self.node}|{os.path.basename(path)}| {line.rstrip()}" for line in f.readlines()[-n:]]
            except OSError:
                pass
        return "\n".join(lines)

    def crashes(self):
        found = []
        for path in self.logs:
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            found += [m.group(0) + ": " + text[m.start():text.find("\n", m.start())][:200] for m in CRASH_RE.finditer(text)]
        return found


# ------------------------------------------------------------- loop disk ----

class LoopDevice:
    def __init__(self, workdir, size=1 << 20):
        self.image = os.path.join(workdir, "disklog.img")
        with open(self.image, "wb") as f:
            f.truncate(size)
        self.size = size
        r = subprocess.run(["losetup", "-f", "--show", self.image], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise RuntimeError(f"losetup failed: {r.stderr.strip()}")
        self.path = r.stdout.strip()
        st = os.stat(self.path)
        self.majmin = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"

    def zero(self):
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.write(fd, b"\0" * self.size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def detach(self):
        subprocess.run(["losetup", "-d", self.path], capture_output=True, timeout=20)


# ------------------------------------------------------------- scenarios ----

class Scenario:
    """One scenario's world: the daemons (shared across scenarios), its logs, drivers and recorder."""

    def __init__(self, suite, name):
        self.suite = suite
        self.name = name
        self.recorder = Recorder()
        self.faults = []       # (time, node, kind): membership-breaking faults
        self.inquorate = []    # (node, t0, t1)
        self.notes = []
        self.extra = checker.Report()
        self.drivers = {}
        self.specs = []
        self.t0 = time.monotonic()
        self.luid_counter = 0

    def fail(self, category, text):
        self.extra.add(category, text)
        log(f"{self.name}: VIOLATION [{category}] {text}")

    def note(self, text):
        self.notes.append(text)
        log(f"{self.name}: {text}")


class Suite:
    def __init__(self, args):
        self.args = args
        self.deadline = Deadline(args.deadline)
        self.tmp = tempfile.mkdtemp(prefix="mldms-suite.", dir=args.tmp_parent)
        self.cluster = None
        self.loop = None
        self.daemons = {}
        self.nodes = []
        self.mode = "self-check" if args.self_check else "cluster"
        self.config = DriverConfig(timeout=args.request_timeout, reconnect_interval=args.reconnect_interval,
                                   seed=args.seed)
        self.results = []
        self.run_id = uuidlib.uuid4().hex[:8]
        self.all_drivers = []
        # --dry-run-local-logs: the cluster and its faults are real, but every node serves its own
        # non-clustered core logs (the same uuids, independent state). Only the orchestration, the driver
        # and the per-node checks mean anything then; the cross-node invariants are reported as warnings.
        self.clustered_logs = self.mode == "cluster" and not args.dry_run_local_logs
        self.relax = set(args.relax or ())
        self.capping = checker.CAPPING_KINDS | ({"daemon-kill"} if args.kill_ends_marks else set())
        if self.mode == "cluster" and args.dry_run_local_logs:
            self.relax |= {"is_clean", "resync", "remote_recovering", "held"}

    # -- setup / teardown -----------------------------------------------------------------------------

    def setup(self):
        binary = os.path.abspath(self.args.binary)
        if not os.access(binary, os.X_OK):
            raise RuntimeError(f"{binary} is not an executable")
        if os.geteuid() != 0:
            raise RuntimeError("must run as root (namespaces, loop devices)")
        try:
            self.loop = LoopDevice(self.tmp)
            log(f"disk log device {self.loop.path} ({self.loop.majmin}) on {self.loop.image}")
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as error:
            if self.mode == "cluster":
                raise
            log(f"no loop device ({error}); the self-check runs without a disk log")
        if self.mode == "cluster":
            script = self.args.netns_cluster or os.path.join(HERE, "netns-cluster.sh")
            self.cluster = Cluster(script)
            self.nodes = [1, 2, 3]
            self.cluster.up(3, self.deadline)
            for k in self.nodes:
                self.daemons[k] = Daemon(binary, k, os.path.join(self.tmp, f"n{k}"), self.cluster.launcher(k), self.cluster.env,
                                         self.args.daemon_arg or ())
        else:
            self.nodes = [1]
            self.daemons[1] = Daemon(binary, 1, os.path.join(self.tmp, "n1"), extra_args=self.args.daemon_arg or ())
        for k in self.nodes:
            pid = self.daemons[k].start(self.deadline)
            log(f"node {k}: mirrorlogd pid {pid}")

    def teardown(self):
        for d in self.all_drivers:
            d.abort()
            d.close("teardown")
        for daemon in self.daemons.values():
            try:
                daemon.stop()
            except Exception as error:  # noqa: BLE001 - keep cleaning
                log(f"node {daemon.node}: stopping the daemon: {error}")
        if self.cluster is not None and self.cluster.is_up:
            self.cluster.down()
        if self.loop is not None:
            self.loop.detach()
        if self.args.keep_logs:
            os.makedirs(self.args.keep_logs, exist_ok=True)
            for daemon in self.daemons.values():
                for path in daemon.logs:
                    try:
                        shutil.copy(path, os.path.join(self.args.keep_logs, f"n{daemon.node}-{os.path.basename(path)}"))
                    except OSError:
                        pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- logs and drivers ------------------------------------------------------------------------------

    def make_specs(self, index):
        n = self.args.regions
        tag = f"{self.run_id}s{index}"
        if self.mode == "cluster" and not self.args.dry_run_local_logs:
            specs = [LogSpec(f"LVM-mldms-{tag}-c1", "clustered-core", n),
                     LogSpec(f"LVM-mldms-{tag}-c2", "clustered-core", n, nosync=True, integrated_flush=True),
                     LogSpec(f"LVM-mldms-{tag}-c3", "clustered-core", max(3, n * 3 // 4), nosync=True)]
            if self.loop is not None and not self.args.no_disk:
                specs.append(LogSpec(f"LVM-mldms-{tag}-d1", "clustered-disk", n, device=self.disk_arg(), integrated_flush=True))
        else:
            specs = [LogSpec(f"LVM-mldms-{tag}-c1", "core", n),
                     LogSpec(f"LVM-mldms-{tag}-c2", "core", n, nosync=True, integrated_flush=True),
                     LogSpec(f"LVM-mldms-{tag}-c3", "core", max(3, n * 3 // 4), nosync=True)]
            if self.loop is not None and not self.args.no_disk and self.mode != "cluster":
                specs.append(LogSpec(f"LVM-mldms-{tag}-d1", "disk", n, device=self.disk_arg(), integrated_flush=True))
        return specs

    def disk_arg(self):
        return self.loop.path if self.args.disk_device_form == "path" else self.loop.majmin

    def new_driver(self, sc, node):
        sc.luid_counter += 1
        ranges = {s.uuid: split_ranges(s.region_count, len(self.nodes))[node] for s in sc.specs}
        luid_base = (node << 40) | (sc.luid_counter << 16)
        d = NodeDriver(node, self.daemons[node].sock, sc.recorder, sc.specs, self.config, sc.shared, ranges, luid_base)
        d.set_deadline(self.deadline.end)
        self.all_drivers.append(d)
        sc.drivers[node] = d
        return d

    def construct(self, sc, nodes, timeout=60):
        """CTR+RESUME on the given nodes at once (joining the same CPG groups concurrently)."""
        results = {}

        def one(k):
            try:
                results[k] = sc.drivers[k].construct_all()
            except ulog.Aborted as error:
                results[k] = {"*": f"aborted: {error}"}
            except Exception as error:  # noqa: BLE001
                results[k] = {"*": repr(error)}

        threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in nodes]
        for t in threads:
            t.start()
        end = time.monotonic() + self.deadline.bound(timeout)
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        ok = True
        for k in nodes:
            if k not in results:
                sc.fail("liveness", f"node {k}: CTR/RESUME of the logs did not finish within {timeout}s")
                sc.drivers[k].abort()
                ok = False
            elif results[k]:
                sc.fail("error", f"node {k}: constructing logs failed: {results[k]}")
                ok = False
        return ok

    # -- the common scenario frame ------------------------------------------------------------------

    def run_scenario(self, index, name, fault):
        sc = Scenario(self, name)
        sc.shared = SharedView()
        sc.specs = self.make_specs(index)
        started = time.monotonic()
        log(f"---- {name}: logs {', '.join(map(repr, sc.specs))}")
        try:
            self.ensure_daemons(sc)
            if self.loop is not None:
                self.loop.zero()
            for k in self.nodes:
                self.new_driver(sc, k)
            if self.construct(sc, self.nodes):
                for k in self.nodes:
                    sc.drivers[k].start("load")
                self.deadline.sleep(self.args.load_before)
                fault(sc)
                self.deadline.sleep(self.args.load_after)
                self.finish(sc)
            else:
                self.abort_drivers(sc)
        except (DeadlineExceeded, ulog.Aborted) as error:
            sc.fail("liveness", f"scenario cut short: {error}")
            self.abort_drivers(sc)
        except Exception as error:  # noqa: BLE001 - a scenario that breaks is a FAIL, the suite goes on
            import traceback
            sc.fail("driver", f"scenario aborted: {error!r}\n{traceback.format_exc()}")
            self.abort_drivers(sc)
        elapsed = time.monotonic() - started
        return self.judge(sc, elapsed)

    def abort_drivers(self, sc):
        for d in sc.drivers.values():
            d.abort()
            d.close("aborted")

    def ensure_daemons(self, sc):
        for k in self.nodes:
            if not self.daemons[k].alive():
                sc.note(f"node {k}: daemon not running at scenario start; starting it")
                self.daemons[k].start(self.deadline)
        if self.cluster is not None:
            for k in self.nodes:
                if not self.cluster.wait_members(k, len(self.nodes), "quorate", 60, self.deadline):
                    raise RuntimeError(f"node {k} does not see {len(self.nodes)} quorate members")

    def live_nodes(self, sc):
        return [k for k in self.nodes if k in sc.drivers and not sc.drivers[k].abort_event.is_set()]

    def finish(self, sc):
        """Quiesce, wait for full resync, IN_SYNC everywhere, compare states, remove the logs."""
        live = self.live_nodes(sc)
        for k in live:
            sc.drivers[k].set_mode("recover")
        # Every write finished and cleared, recovery goes on until every node counts every region in sync.
        counts = {}
        sync_end = time.monotonic() + self.deadline.bound(self.args.sync_wait)

        def synced():
            done = True
            for k in live:
                for spec in sc.specs:
                    try:
                        error, count = sc.drivers[k].logs[spec.uuid].answer(
                            GET_SYNC_COUNT, within=max(0.5, sync_end - time.monotonic()))
                    except ulog.Aborted:
                        error, count = "no reply", None
                    counts[(k, spec.uuid)] = count if not error else f"error {error}"
                    done = done and count == spec.region_count
            return done

        if not wait_until(synced, self.args.sync_wait, self.deadline, interval=0.5):
            lagging = {f"n{k}:{u[-2:]}": c for (k, u), c in counts.items()
                       if c != next(s.region_count for s in sc.specs if s.uuid == u)}
            sc.fail("sync", f"GET_SYNC_COUNT did not reach the region count on every node within {self.args.sync_wait}s: {lagging}")
        else:
            self.check_all_in_sync(sc, live)
        quiet_end = time.monotonic() + self.deadline.bound(20)
        for k in live:
            sc.drivers[k].set_mode("quiet")
        for k in live:
            if not sc.drivers[k].wait_quiescent(max(0.0, quiet_end - time.monotonic())):
                sc.fail("liveness", f"node {k}: the driver did not become quiescent within 20 s (requests held?)")
        self.wait_replies(sc, 10)
        self.compare_states(sc, live)
        for k in live:
            d = sc.drivers[k]
            if not d.stop(self.deadline.bound(10)):
                sc.fail("liveness", f"node {k}: driver threads did not stop")
                continue
            failed = d.suspend_and_destroy(within=self.deadline.bound(20))
            if failed:
                sc.fail("error", f"node {k}: removing the logs failed: {failed}")
        self.wait_replies(sc, 5)
        for d in sc.drivers.values():
            d.close("closed")
        for k in self.nodes:
            if not self.daemons[k].alive():
                sc.fail("daemon", f"node {k}: the daemon is not running at the end of the scenario")

    def check_all_in_sync(self, sc, live):
        bad = []
        lock = threading.Lock()

        def one(k, spec):
            klog = sc.drivers[k].logs[spec.uuid]
            for r in range(spec.region_count):
                try:
                    error, value = klog.answer(IN_SYNC, u64s(r), within=max(0.5, end - time.monotonic()))
                except ulog.Aborted:
                    return  # reported below as not finished
                if error or value != 1:
                    with lock:
                        bad.append((k, spec.uuid, r, error, value))
        end = time.monotonic() + self.deadline.bound(60)
        threads = [threading.Thread(target=one, args=(k, s), daemon=True) for k in live for s in sc.specs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
        if any(t.is_alive() for t in threads):
            sc.fail("liveness", "IN_SYNC over every region did not finish within 60 s")
        if bad:
            sc.fail("sync", f"{len(bad)} IN_SYNC answers are not 1 after full resync, e.g. {bad[:5]}")

    def wait_replies(self, sc, timeout):
        def answered():
            records, _, _, gen_end = sc.recorder.snapshot()
            return all(r.replies or gen_end.get(r.gen, (0, ""))[1] == "lost" for r in records)
        wait_until(answered, timeout, self.deadline, interval=0.1)

    def compare_states(self, sc, live):
        """SIGUSR1 on every daemon; parse its state lines; all members of a log must agree."""
        expect = {s.uuid: s for s in sc.specs}
        problems = []
        for attempt in range(3):
            offsets, found = {}, {k: {} for k in live}
            for k in live:
                offsets[k] = self.daemons[k].log_size()
                if not self.daemons[k].signal(signal.SIGUSR1):
                    sc.fail("daemon", f"node {k}: daemon not running for the state dump")
                    return

            def parsed():
                for k in live:
                    for line in self.daemons[k].log_since(offsets[k]).splitlines():
                        got = parse_state_line(line, self.clustered_logs)
                        if got and got[0] in expect:
                            found[k][got[0]] = got[1]
                return all(len(found[k]) == len(expect) for k in live)

            if not wait_until(parsed, 5, self.deadline, interval=0.1):
                for k in live:
                    missing = sorted(set(expect) - set(found[k]))
                    if missing:
                        sc.fail("agreement", f"node {k}: SIGUSR1 dump has no state line for {missing} (want a line "
                                             f"{'cluster-state uuid=<uuid> members=<k> digest=<16 hex> sync=<a>/<N>' if self.clustered_logs else '<uuid> luid=... in_sync=<a>/<N>'})")
                return
            problems = []
            for u, spec in expect.items():
                per_node = {k: found[k][u] for k in live}
                bad = {k: st for k, st in per_node.items() if st[0] == "unparsable"}
                if bad:
                    problems.append(f"{u}: unparsable state lines {bad}")
                    continue
                digests = {k: st[1] for k, st in per_node.items()}
                if len(set(digests.values())) > 1:
                    problems.append(f"{u}: digests differ {digests}")
                for k, (members, _digest, a, total) in per_node.items():
                    if self.clustered_logs and members != len(live):
                        problems.append(f"{u}: node {k} reports members={members}, want {len(live)}")
                    if (a, total) != (spec.region_count, spec.region_count):
                        problems.append(f"{u}: node {k} reports sync={a}/{total}, want {spec.region_count}/{spec.region_count}")
            if not problems:
                sample = {u[-2:]: sorted(set(found[k][u][1] for k in live)) for u in expect}
                sc.note(f"state dump agrees on every log ({'digests ' + str(sample) if self.clustered_logs else 'in_sync=N/N'})")
                return
            if attempt < 2:
                self.deadline.sleep(1.0)  # a member may still be applying the last messages
        for p in problems:
            sc.fail("agreement", p)

    # -- judging -------------------------------------------------------------------------------------

    def judge(self, sc, elapsed):
        records, events, problems, gen_end = sc.recorder.snapshot()
        if not hasattr(self, "_first_records") and records:
            self._first_records, self._first_problems = records, problems
            self._first_gen_end, self._first_faults = gen_end, list(sc.faults)
        report = checker.check_history(records, problems, gen_end, sc.faults, sc.inquorate,
                                       relax=self.relax, capping=self.capping, strict_replies=self.args.strict_replies)
        if self.args.dump_history:
            self.dump_history(sc, records, events, problems, gen_end)
        report.violations = sc.extra.violations + report.violations
        report.warnings = sc.extra.warnings + report.warnings
        for daemon in self.daemons.values():
            for crash in daemon.crashes():
                if crash not in getattr(self, "_seen_crashes", set()):
                    self._seen_crashes = getattr(self, "_seen_crashes", set()) | {crash}
                    report.violations.append(("daemon", f"node {daemon.node}: {crash}"))
        c = report.counts
        status = "FAIL" if report.violations else "PASS"
        per_type = {}
        for r in records:
            name = ulog.TYPE_NAMES.get(r.rtype, str(r.rtype))
            per_type[name] = per_type.get(name, 0) + 1
        line = (f"{status} {sc.name}: requests={c['requests']} violations={len(report.violations)} "
                f"resynced={c['resynced']} time={elapsed:.1f}s (timeouts={c['timeouts']} resends={c['resends']} reconnect_ctr={c['reconnect_ctr']} "
                f"unanswered_lost={c['unanswered_lost']} superseded={c['superseded_unanswered']} soft_errors={c['soft_errors']}"
                f"{'; ' + '; '.join(sc.notes) if sc.notes else ''})")
        print(line, flush=True)
        if self.args.verbose:
            print(f"  requests by type: {per_type}")
            for d in sc.drivers.values():
                print(f"  node {d.node} driver: {d.stats()}")
        if report.violations or report.warnings:
            print(report.summary(), flush=True)
        if report.violations:
            for daemon in self.daemons.values():
                print(daemon.tail(15), flush=True)
            for when, kind, node, detail in events[-15:]:
                print(f"  event {when - sc.t0:8.3f} {kind} node {node}: {detail}")
        self.results.append((sc.name, status, report))
        return status == "PASS"

    def dump_history(self, sc, records, events, problems, gen_end):
        """Writes the scenario's history as JSON lines (times relative to the scenario's start)."""
        import json
        os.makedirs(self.args.dump_history, exist_ok=True)
        path = os.path.join(self.args.dump_history, f"{len(self.results) + 1:02d}-{sc.name}.jsonl")
        rel = lambda t: None if t is None else round(t - sc.t0, 6)  # noqa: E731
        with open(path, "w") as f:
            f.write(json.dumps({"scenario": sc.name, "t0": sc.t0, "faults": [(rel(t), n, k, rel(e)) for t, n, k, e in sc.faults],
                                "inquorate": [(n, rel(a), rel(b)) for n, a, b in sc.inquorate],
                                "gen_end": {g: (rel(t), why) for g, (t, why) in gen_end.items()}}) + "\n")
            for t, kind, node, detail in events:
                f.write(json.dumps({"event": kind, "t": rel(t), "node": node, "detail": detail}) + "\n")
            for t, category, text in problems:
                f.write(json.dumps({"problem": category, "t": rel(t), "text": text}) + "\n")
            for r in records:
                f.write(json.dumps({"id": r.id, "node": r.node, "log": r.log, "type": ulog.TYPE_NAMES.get(r.rtype, r.rtype),
                                    "args": list(r.args or ()), "seq": r.seq, "gen": r.gen, "send": rel(r.send),
                                    "reply": rel(r.reply), "error": r.error,
                                    "answer": list(r.answer) if isinstance(r.answer, tuple) else r.answer,
                                    "kind": r.kind, "accepted": bool(r.accepted), "replies": r.replies}) + "\n")
        log(f"{sc.name}: history written to {path}")

    # -- faults --------------------------------------------------------------------------------------

    def kill_daemon_and_restart(self, sc, node, down_for):
        daemon = self.daemons[node]
        t = time.monotonic()
        daemon.signal(signal.SIGKILL)
        sc.faults.append([t, node, "daemon-kill", None])
        sc.recorder.event("fault", node, "kill -9 mirrorlogd")
        if not daemon.wait_exit(self.deadline.bound(10)):
            sc.fail("daemon", f"node {node}: daemon survived SIGKILL")
            return
        sc.note(f"killed node {node}'s daemon (kill -9)")
        self.deadline.sleep(down_for)
        daemon.start(self.deadline)
        sc.recorder.event("daemon-start", node, f"incarnation {daemon.incarnation}")
        driver = sc.drivers[node]
        if not wait_until(lambda: all(k.reconnects >= 1 for k in driver.logs.values()), 40, self.deadline, 0.2):
            pending = [u for u, k in driver.logs.items() if k.reconnects < 1]
            sc.fail("liveness", f"node {node}: the driver did not reconnect {pending} (CTR reconnect form + RESUME) within 40 s")
        else:
            sc.note(f"node {node} restarted; its driver reconnected every log in {time.monotonic() - t:.1f}s after the kill")

    def progress_since(self, sc, node, since, until=None):
        """Successful MARK/FLUSH-with-marks/CLEAR replies of `node` for requests sent after `since`."""
        records, _, _, _ = sc.recorder.snapshot()
        return sum(1 for r in records if r.node == node and r.rtype in (MARK, FLUSH, CLEAR) and r.error == 0
                   and r.reply is not None and r.send >= since and (until is None or r.reply <= until))

    def first_progress(self, sc, node, since):
        """Reply time of the first successful MARK/FLUSH/CLEAR of `node` sent after `since`, or None."""
        records, _, _, _ = sc.recorder.snapshot()
        times = [r.reply for r in records if r.node == node and r.rtype in (MARK, FLUSH, CLEAR) and r.error == 0
                 and r.reply is not None and r.send >= since]
        return min(times) if times else None

    def scenario_kill_daemon(self, sc):
        if self.mode == "cluster":
            self.kill_daemon_and_restart(sc, 3, down_for=3.0)
        else:
            self.kill_daemon_and_restart(sc, 1, down_for=1.5)

    def scenario_kill_corosync(self, sc):
        node, others = 2, [1, 3]
        t = time.monotonic()
        fault = [t, node, "corosync-kill", None]
        sc.faults.append(fault)
        self.cluster.run("kill-corosync", node, timeout=self.deadline.bound(30))
        t_killed = time.monotonic()
        sc.recorder.event("fault", node, f"kill -9 corosync (command took {t_killed - t:.2f}s)")
        for k in others:
            if not self.cluster.wait_members(k, 2, "quorate", 30, self.deadline):
                sc.fail("liveness", f"node {k} did not see 2 quorate members after node {node}'s corosync died")
        t_q = time.monotonic()
        self.deadline.sleep(3.0)
        if self.progress_since(sc, others[0], t_q + 1) == 0 or self.progress_since(sc, others[1], t_q + 1) == 0:
            sc.fail("liveness", f"nodes {others} made no write progress while node {node}'s corosync was down")
        t_start = time.monotonic()
        self.cluster.run("start-corosync", node, timeout=self.deadline.bound(40))
        fault[3] = t_start
        sc.inquorate.append((node, t_killed, t_start))
        sc.recorder.event("fault-end", node, "corosync started")
        for k in self.nodes:
            if not self.cluster.wait_members(k, 3, "quorate", 40, self.deadline):
                sc.fail("liveness", f"node {k} did not see 3 quorate members after corosync {node} restarted")
        daemon = self.daemons[node]
        if daemon.alive():
            sc.note(f"node {node}'s daemon survived losing corosync (no restart)")
        else:
            sc.note(f"node {node}'s daemon exited after losing corosync; restarted it")
            daemon.start(self.deadline)
            sc.recorder.event("daemon-start", node, f"incarnation {daemon.incarnation}")
        if not wait_until(lambda: self.progress_since(sc, node, t_start) > 0, 40, self.deadline, 0.2):
            sc.fail("liveness", f"node {node} made no write progress within 40 s after corosync restarted (did its daemon rejoin?)")
        else:
            sc.note(f"node {node}'s first write after corosync restarted was answered "
                    f"{self.first_progress(sc, node, t_start) - t_start:.1f}s after the restart began")

    def scenario_partition(self, sc):
        node, others = 3, [1, 2]
        t = time.monotonic()
        fault = [t, node, "partition", None]
        sc.faults.append(fault)
        self.cluster.run("partition", node, timeout=self.deadline.bound(20))
        sc.recorder.event("fault", node, "partition")
        for k in others:
            if not self.cluster.wait_members(k, 2, "quorate", 40, self.deadline):
                sc.fail("liveness", f"node {k} did not see 2 quorate members after the partition")
        t_q12 = time.monotonic()
        t_q3 = None
        if self.cluster.wait_members(node, 1, "inquorate", 40, self.deadline):
            t_q3 = time.monotonic()
        else:
            sc.fail("liveness", f"node {node} did not lose quorum after the partition")
        self.deadline.sleep(self.args.hold_for)
        t_heal = time.monotonic()
        for k in others:
            if self.progress_since(sc, k, t_q12 + 1, t_heal) == 0:
                sc.fail("liveness", f"node {k} (quorate side) made no write progress during the partition")
        held_before = self.progress_since(sc, node, (t_q3 or t_heal) + 1, t_heal)
        self.cluster.run("heal", node, timeout=self.deadline.bound(20))
        fault[3] = t_heal
        sc.recorder.event("fault-end", node, "heal")
        if t_q3 is not None:
            sc.inquorate.append((node, t_q3, t_heal))
        for k in self.nodes:
            if not self.cluster.wait_members(k, 3, "quorate", 40, self.deadline):
                sc.fail("liveness", f"node {k} did not see 3 quorate members after the heal")
        if not wait_until(lambda: self.progress_since(sc, node, t_heal) > 0, 40, self.deadline, 0.2):
            sc.fail("liveness", f"node {node} made no write progress within 40 s after the heal")
        else:
            sc.note(f"node {node}: {held_before} writes answered while it was inquorate (held: want 0); its first write "
                    f"after the heal was answered {self.first_progress(sc, node, t_heal) - t_heal:.1f}s after it")

    def scenario_rejoin(self, sc):
        node = 3 if self.mode == "cluster" else 1
        d = sc.drivers[node]
        if not d.wait_quiescent(self.deadline.bound(20)):
            sc.fail("liveness", f"node {node}: driver did not quiesce before the clean stop")
        d.stop(self.deadline.bound(10))
        failed = d.suspend_and_destroy(within=self.deadline.bound(20))
        if failed:
            sc.fail("error", f"node {node}: removing the logs failed: {failed}")
        d.close("closed")
        daemon = self.daemons[node]
        daemon.signal(signal.SIGTERM)
        if not daemon.wait_exit(self.deadline.bound(10)):
            sc.fail("daemon", f"node {node}: daemon did not exit on SIGTERM with no active logs")
            daemon.stop()
        sc.note(f"node {node} removed its logs and its daemon exited on SIGTERM")
        self.deadline.sleep(2.0)
        daemon.start(self.deadline)
        sc.recorder.event("daemon-start", node, f"incarnation {daemon.incarnation}")
        t = time.monotonic()
        self.new_driver(sc, node)
        if self.construct(sc, [node]):
            sc.drivers[node].start("load")
            others = [k for k in self.nodes if k != node]
            sc.note(f"node {node} re-created its logs in {time.monotonic() - t:.1f}s"
                    + (f" while nodes {others} were under load" if others else ""))
        else:
            sc.drivers[node].abort()

    # -- main ----------------------------------------------------------------------------------------

    SCENARIOS = {
        "s1": ("s1-kill-daemon", "scenario_kill_daemon"),
        "s2": ("s2-kill-corosync", "scenario_kill_corosync"),
        "s3": ("s3-partition", "scenario_partition"),
        "s4": ("s4-rejoin", "scenario_rejoin"),
    }

    def run(self):
        ok = True
        if self.mode == "cluster":
            chosen = [s.strip() for s in self.args.scenarios.split(",") if s.strip()]
            for i, key in enumerate(chosen, 1):
                if key not in self.SCENARIOS:
                    raise SystemExit(f"unknown scenario {key}; choose from {', '.join(self.SCENARIOS)}")
                name, method = self.SCENARIOS[key]
                if self.deadline.left() < 20:
                    print(f"FAIL {name}: not run, the global deadline ({self.args.deadline:.0f}s) is (nearly) used up", flush=True)
                    self.results.append((name, "FAIL", None))
                    ok = False
                    continue
                ok = self.run_scenario(i, name, getattr(self, method)) and ok
        else:
            ok = self.run_scenario(1, "selfcheck-kill-daemon", self.scenario_kill_daemon) and ok
            ok = self.run_scenario(2, "selfcheck-clean-restart", self.scenario_rejoin) and ok
            ok = self.checker_on_real_history() and ok
        return ok

    def checker_on_real_history(self):
        """The checker must flag a fake violation injected into a real recorded history."""
        if not self.results:
            return False
        name, _status, _report = self.results[0]
        # Re-run the first scenario's history with injected faults (its recorder is kept on the report).
        records = getattr(self, "_first_records", None)
        if not records:
            print("FAIL checker-on-real-history: no recorded history to inject into")
            return False
        mark = next((r for r in records if r.rtype in (MARK, FLUSH) and r.args and r.error == 0 and r.accepted
                     and r.reply is not None), None)
        grant = next((r for r in records if r.rtype == ulog.GET_RESYNC_WORK and r.answer and r.answer[0] == 1 and r.accepted), None)
        failures = []
        base = checker.check_history(records, self._first_problems, self._first_gen_end, self._first_faults,
                                     capping=self.capping)
        for label, fake, category in (
                ("IS_CLEAN=1 under a live mark", mark and ulog.Record(
                    id=len(records), node=9, log=mark.log, rtype=ulog.IS_CLEAN, args=(mark.args[0],), seq=1, gen=-1,
                    send=mark.reply + 1e-6, reply=mark.reply + 2e-6, error=0, answer=1, payload_len=8, call=0,
                    kind="normal", accepted=True, replies=1), "is_clean"),
                ("a second grant of a region being resynced", grant and ulog.Record(
                    id=len(records), node=9, log=grant.log, rtype=ulog.GET_RESYNC_WORK, args=(), seq=2, gen=-1,
                    send=grant.reply, reply=grant.reply + 1e-6, error=0, answer=(1, grant.answer[1]), payload_len=16,
                    call=0, kind="normal", accepted=True, replies=1), "resync"),
                ("an -EIO to a MARK", mark and ulog.Record(
                    id=len(records), node=9, log=mark.log, rtype=MARK, args=(0,), seq=3, gen=-1, send=mark.send,
                    reply=mark.reply, error=-ulog.EIO, answer=None, payload_len=0, call=0, kind="normal",
                    accepted=True, replies=1), "error")):
            if fake is None:
                failures.append(f"{label}: the history has nothing to inject next to")
                continue
            report = checker.check_history(records + [fake], self._first_problems, self._first_gen_end, self._first_faults,
                                           capping=self.capping)
            extra = report.by_category()
            extra.subtract(base.by_category())
            if extra.get(category, 0) < 1:
                failures.append(f"{label}: not flagged (got {dict(report.by_category())})")
            else:
                print(f"  injected {label} into {name}'s real history ({len(records)} requests): flagged as [{category}]")
        status = "FAIL" if failures else "PASS"
        print(f"{status} checker-on-real-history: {3 - len(failures)}/3 injected violations flagged", flush=True)
        for f in failures:
            print("  " + f)
        return not failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", help="path of the mirrorlogd to test")
    parser.add_argument("--self-check", action="store_true", help="one local daemon, core/disk logs, no cluster")
    parser.add_argument("--unit-self-test", "--checker-self-test", action="store_true",
                        help="only the unit self-tests (checker on synthetic histories; wire client against a fake daemon)")
    parser.add_argument("--scenarios", default="s1,s2,s3,s4", help="comma-separated subset of s1,s2,s3,s4")
    parser.add_argument("--deadline", type=float, default=300, help="global limit in seconds (default 300)")
    parser.add_argument("--request-timeout", type=float, default=15.0, help="per-request timeout before a re-send with a new seq (kernel: 15)")
    parser.add_argument("--reconnect-interval", type=float, default=2.0, help="CTR retry interval while the daemon is gone (kernel: 2)")
    parser.add_argument("--regions", type=int, default=256, help="regions per log (default 256)")
    parser.add_argument("--load-before", type=float, default=5.0, help="seconds of load before the fault")
    parser.add_argument("--load-after", type=float, default=4.0, help="seconds of load after the fault")
    parser.add_argument("--hold-for", type=float, default=5.0, help="seconds node 3 stays partitioned after losing quorum")
    parser.add_argument("--sync-wait", type=float, default=30.0, help="bound on the final resync (default 30 s)")
    parser.add_argument("--disk-device-form", choices=("majmin", "path"), default="majmin",
                        help="how the disk log device is named in CTR (the kernel sends major:minor)")
    parser.add_argument("--no-disk", action="store_true", help="no (clustered-)disk log")
    parser.add_argument("--dry-run-local-logs", action="store_true",
                        help="cluster mode with per-node core logs instead of clustered ones: exercises the cluster, "
                             "the faults and the driver before the daemon has a cluster layer (cross-node checks become warnings)")
    parser.add_argument("--relax", action="append", choices=checker.CATEGORIES,
                        help="report this invariant's violations as warnings (repeatable)")
    parser.add_argument("--kill-ends-marks", action="store_true",
                        help="a killed daemon's marks and grants end at the kill (default: they bind until its node's "
                             "kernel clears them through the restarted daemon, as Docs/cluster.md promises)")
    parser.add_argument("--strict-replies", action="store_true",
                        help="every seq must be answered, also one superseded by a re-send after a timeout")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep-logs", help="copy the daemons' logs into this directory at the end")
    parser.add_argument("--dump-history", help="write each scenario's recorded history (JSON lines) into this directory")
    parser.add_argument("--netns-cluster", help="path of netns-cluster.sh (default: beside this file)")
    parser.add_argument("--tmp-parent", help="directory for the suite's temp dir (default: $TMPDIR or /tmp)")
    parser.add_argument("--daemon-arg", action="append", help="extra argument for every mirrorlogd (repeatable)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    if args.unit_self_test or args.self_check:
        failures = checker.self_test(verbose=args.verbose)
        for f in failures:
            print("  " + f)
        print(f"{'FAIL' if failures else 'PASS'} checker-self-test: injected violations of every invariant flagged, "
              f"clean histories accepted ({len(failures)} problem(s))", flush=True)
        wire = ulog.self_test(verbose=args.verbose)
        for f in wire:
            print("  " + f)
        print(f"{'FAIL' if wire else 'PASS'} ulog-self-test: timeout re-send, -EAGAIN, -ESRCH and lost-connection reconnects, "
              f"duplicate and unsolicited replies flagged ({len(wire)} problem(s))", flush=True)
        failures += wire
        parse = parse_self_test()
        for f in parse:
            print("  " + f)
        print(f"{'FAIL' if parse else 'PASS'} state-line-self-test: 'cluster-state uuid=... members= digest= sync=' lines parsed",
              flush=True)
        failures += parse
        if args.unit_self_test:
            return 1 if failures else 0
        if failures:
            return 1
    if not args.binary:
        parser.error("--binary is required")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)

    suite = Suite(args)
    started = time.monotonic()
    ok = False
    try:
        suite.setup()
        ok = suite.run()
    except KeyboardInterrupt as why:
        print(f"FAIL suite: interrupted ({why})", flush=True)
    except DeadlineExceeded as why:
        print(f"FAIL suite: {why}", flush=True)
    except Exception as error:  # noqa: BLE001
        print(f"FAIL suite: {error}", flush=True)
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # let the cleanup finish
        suite.teardown()
    failed = [name for name, status, _ in suite.results if status != "PASS"]
    print(f"multinode suite ({suite.mode}): {len(suite.results) - len(failed)} scenario(s) passed, {len(failed)} failed"
          f"{' (' + ', '.join(failed) + ')' if failed else ''}; {time.monotonic() - started:.0f}s", flush=True)
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
