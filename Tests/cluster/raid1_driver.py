#!/usr/bin/env python3
"""A workload driver that behaves like dm-raid1 (and dm-log-userspace) on each node, for mirrorlogd.

Per node one `NodeDriver`: one connection to that node's daemon (the kernel has one connector for all
logs; one seq counter). Per log and node:

- a worker thread, single-threaded like kmirrord's do_mirror(): each round it
  1. recovery: GET_RESYNC_WORK (one region at a time per node) → "copy" for a while → SET_REGION_SYNC(r, 1);
     while a region is being recovered locally no local write goes to it (the region hash delays them);
  2. write completion: CLEAR the regions whose writes finished;
  3. new writes to regions in the node's own range: IS_REMOTE_RECOVERING first (the kernel's in_sync_hint
     cache: regions below the hint are not asked; at most one ask per 250 ms per node, the time in between
     counts as "recovering"), IN_SYNC, then MARK + FLUSH, or FLUSH carrying the marks (integrated_flush);
     a clear-only flush is deferred by 3 s with integrated_flush, as in the kernel;
- a reader thread (the kernel's other contexts: status, and reads): IS_CLEAN and IN_SYNC of regions that
  are marked somewhere (biased, to give the checker something to check), IS_REMOTE_RECOVERING of regions
  being recovered elsewhere, GET_SYNC_COUNT (== region count sets the hint to the region count).

Modes: "load" (writes + recovery + reads), "recover" (no new writes; recovery and reads go on),
"quiet" (finish writes and the current recovery, ask for no more work, no reads; sets `quiescent`).
Every wait is bounded by the request timeout (re-sent with a new seq, as the kernel does) and the
driver's abort event.
"""
import random
import threading
import time
import traceback

import ulog
from ulog import (CLEAR, DTR, FLUSH, GET_RESYNC_WORK, GET_SYNC_COUNT, IN_SYNC, IS_CLEAN,
                  IS_REMOTE_RECOVERING, MARK, POSTSUSPEND, PRESUSPEND, SET_REGION_SYNC, STATUS_INFO, Aborted,
                  KernelLog, u64s, region_sync)

BATCH = 32  # the kernel sends marks and clears in groups of up to 32 regions


class LogSpec:
    """One mirror log as every node's table describes it."""

    def __init__(self, uuid, log_type, region_count, region_size=1024, nosync=False, device=None,
                 integrated_flush=False):
        self.uuid = uuid
        self.log_type = log_type
        self.region_count = region_count
        self.region_size = region_size
        self.nosync = nosync
        self.device = device
        self.integrated_flush = integrated_flush

    def ctr_text(self):
        """The CTR string the kernel sends: "<length in sectors> <log type> <args...>"."""
        words = [str(self.region_count * self.region_size), self.log_type]
        if self.device:
            words.append(self.device)
        words.append(str(self.region_size))
        if self.nosync:
            words.append("nosync")
        return " ".join(words)

    def __repr__(self):
        return f"{self.uuid}({self.ctr_text()}{', integrated_flush' if self.integrated_flush else ''})"


class DriverConfig:
    def __init__(self, **kw):
        self.timeout = 15.0            # the kernel's request timeout
        self.reconnect_interval = 2.0  # the kernel retries CTR every 2 s while the daemon is gone
        self.tick = 0.01               # worker round when idle
        self.max_inflight = 12         # writes in flight per log and node
        self.batch = (1, 6)            # regions per write batch
        self.write_time = (0.01, 0.08)
        self.copy_time = (0.005, 0.03)
        self.idle_poll = 0.1           # GET_RESYNC_WORK when the last one found nothing
        self.reader_interval = 0.03
        self.irr_limit = 0.25          # one IS_REMOTE_RECOVERING per 250 ms per node
        self.hot_bias = 0.7
        self.seed = 1
        for key, value in kw.items():
            if not hasattr(self, key):
                raise TypeError(f"unknown driver option {key}")
            setattr(self, key, value)


class SharedView:
    """What all drivers know together (they run in one process): regions marked and being recovered.
    Only used to aim the readers at interesting regions; the checker never relies on it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.marked = {}      # uuid -> {region: count}
        self.recovering = {}  # uuid -> {region: node}

    def mark(self, uuid, regions, delta):
        with self.lock:
            table = self.marked.setdefault(uuid, {})
            for r in regions:
                n = table.get(r, 0) + delta
                if n > 0:
                    table[r] = n
                else:
                    table.pop(r, None)

    def set_recovering(self, uuid, region, node):
        with self.lock:
            table = self.recovering.setdefault(uuid, {})
            if node is None:
                table.pop(region, None)
            else:
                table[region] = node

    def pick_marked(self, uuid, rng):
        with self.lock:
            table = self.marked.get(uuid)
            return rng.choice(list(table)) if table else None

    def pick_recovering(self, uuid, node, rng):
        with self.lock:
            table = self.recovering.get(uuid) or {}
            candidates = [r for r, n in table.items() if n != node]
            return rng.choice(candidates) if candidates else None


class LogWorker:
    def __init__(self, driver, spec, klog, own_range):
        self.driver = driver
        self.spec = spec
        self.klog = klog
        self.own = own_range
        self.node = driver.node
        self.rng = random.Random(f"{driver.config.seed}/{driver.node}/{spec.uuid}/worker")
        self.inflight = {}        # region -> completion time
        self.recovering = None    # [region, done time]
        self.next_poll = 0.0
        self.hint = 0
        self.seen_resumes = None
        self.clear_flush_due = None
        self.quiescent = threading.Event()
        self.finished = threading.Event()
        self.stats = {"writes": 0, "granted": 0, "resynced": 0, "irr_asked": 0, "irr_busy": 0}
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"worker-n{self.node}-{spec.uuid}")
        self.reader = threading.Thread(target=self._read_loop, daemon=True, name=f"readr-n{self.node}-{spec.uuid}")

    # -- helpers ----------------------------------------------------------------------------------

    def _call(self, rtype, payload=b""):
        return self.klog.call(rtype, payload)

    def _answer(self, rtype, payload=b""):
        return self.klog.answer(rtype, payload)

    def _note_resume(self):
        if self.klog.resumes != self.seen_resumes:
            self.seen_resumes = self.klog.resumes
            self.hint = 0  # the kernel resets in_sync_hint at resume

    def _remote_recovering(self, region, now):
        """dm-raid1's is_remote_recovering with the kernel's hint cache and 250 ms limiter."""
        if region < self.hint:
            return False
        if not self.driver.irr_permit(now):
            return True
        self.stats["irr_asked"] += 1
        error, answer = self._answer(IS_REMOTE_RECOVERING, u64s(region))
        if error or answer is None:
            return True
        recovering, hint = answer
        self.hint = hint
        if recovering:
            self.stats["irr_busy"] += 1
        return bool(recovering)

    # -- the worker -------------------------------------------------------------------------------

    def _run(self):
        try:
            while not self.driver.stop_threads.is_set():
                self._round()
                if self.driver.stop_threads.wait(self.driver.config.tick):
                    break
        except Aborted:
            pass
        except Exception:  # noqa: BLE001 - a driver bug must fail the suite visibly
            self.driver.recorder.problem("driver", f"node {self.node} worker {self.spec.uuid}: {traceback.format_exc()}")
        finally:
            self.finished.set()

    def _round(self):
        cfg = self.driver.config
        mode = self.driver.mode
        self._note_resume()
        now = time.monotonic()
        # 1. recovery
        if self.recovering is None and mode in ("load", "recover") and now >= self.next_poll:
            error, answer = self._answer(GET_RESYNC_WORK)
            if error == 0 and answer and answer[0] == 1:
                region = answer[1]
                self.recovering = [region, time.monotonic() + self.rng.uniform(*cfg.copy_time)]
                self.stats["granted"] += 1
                self.driver.shared.set_recovering(self.spec.uuid, region, self.node)
            else:
                self.next_poll = time.monotonic() + cfg.idle_poll
        if self.recovering is not None and time.monotonic() >= self.recovering[1] \
                and self.recovering[0] not in self.inflight:
            region = self.recovering[0]
            self._call(SET_REGION_SYNC, region_sync(region, 1))
            self.driver.shared.set_recovering(self.spec.uuid, region, None)
            self.recovering = None
            self.stats["resynced"] += 1
        # 2. completed writes: clears (the kernel sends clears, then marks, then the flush)
        now = time.monotonic()
        done = sorted(r for r, t in self.inflight.items() if t <= now)
        for i in range(0, len(done), BATCH):
            self._call(CLEAR, u64s(*done[i:i + BATCH]))
        for r in done:
            del self.inflight[r]
        if done:
            self.driver.shared.mark(self.spec.uuid, done, -1)
        # 3. new writes
        marks = []
        if mode == "load" and len(self.inflight) < cfg.max_inflight:
            lo, hi = self.own
            want = min(self.rng.randint(*cfg.batch), cfg.max_inflight - len(self.inflight))
            busy = set(self.inflight)
            if self.recovering is not None:
                busy.add(self.recovering[0])
            candidates = set()
            for _ in range(want * 3):
                if len(candidates) >= want:
                    break
                r = self.rng.randrange(lo, hi)
                if r not in busy:
                    candidates.add(r)
            for r in sorted(candidates):
                if self._remote_recovering(r, time.monotonic()):
                    continue  # the kernel requeues the bio and retries later
                self._answer(IN_SYNC, u64s(r))  # dm_rh_get_state(may_block=1): which legs to write
                marks.append(r)
        if marks:
            if self.spec.integrated_flush:
                for i in range(0, len(marks), BATCH):
                    self._call(FLUSH, u64s(*marks[i:i + BATCH]))
            else:
                for i in range(0, len(marks), BATCH):
                    self._call(MARK, u64s(*marks[i:i + BATCH]))
                self._call(FLUSH)
            self.clear_flush_due = None
            now = time.monotonic()
            for r in marks:
                self.inflight[r] = now + self.rng.uniform(*cfg.write_time)
            self.driver.shared.mark(self.spec.uuid, marks, +1)
            self.stats["writes"] += len(marks)
        elif done:
            if not self.spec.integrated_flush or mode != "load":
                self._call(FLUSH)
            elif self.clear_flush_due is None:
                self.clear_flush_due = time.monotonic() + 3.0
        if self.clear_flush_due is not None and (mode != "load" or time.monotonic() >= self.clear_flush_due):
            self._call(FLUSH)
            self.clear_flush_due = None
        if mode == "quiet" and not self.inflight and self.recovering is None and self.clear_flush_due is None:
            self.quiescent.set()
        else:
            self.quiescent.clear()

    # -- the reader -------------------------------------------------------------------------------

    def _read_loop(self):
        cfg = self.driver.config
        rng = random.Random(f"{cfg.seed}/{self.node}/{self.spec.uuid}/reader")
        try:
            while not self.driver.stop_threads.is_set():
                if self.driver.mode in ("load", "recover"):
                    self._read_once(rng)
                if self.driver.stop_threads.wait(cfg.reader_interval * rng.uniform(0.5, 1.5)):
                    break
        except Aborted:
            pass
        except Exception:  # noqa: BLE001
            self.driver.recorder.problem("driver", f"node {self.node} reader {self.spec.uuid}: {traceback.format_exc()}")

    def _read_once(self, rng):
        n = self.spec.region_count
        pick = rng.random()
        if pick < 0.1:
            error, count = self._answer(GET_SYNC_COUNT)
            if error == 0 and count == n:
                self.hint = n  # GET_SYNC_COUNT == region_count sets the kernel's hint
            return
        if pick < 0.17:
            region = self.driver.shared.pick_recovering(self.spec.uuid, self.node, rng)
            self._answer(IS_REMOTE_RECOVERING, u64s(region if region is not None else rng.randrange(n)))
            return
        if pick < 0.19:
            self._answer(STATUS_INFO)
            return
        region = self.driver.shared.pick_marked(self.spec.uuid, rng) if rng.random() < self.driver.config.hot_bias else None
        if region is None:
            region = rng.randrange(n)
        self._answer(IS_CLEAN if pick < 0.7 else IN_SYNC, u64s(region))


class NodeDriver:
    """The 'kernel' of one node: its connection, its logs, their workers and readers."""

    def __init__(self, node, socket_path, recorder, specs, config, shared, own_ranges, luid_base):
        self.node = node
        self.recorder = recorder
        self.config = config
        self.shared = shared
        self.conn = ulog.Connection(node, socket_path, recorder)
        self.abort_event = threading.Event()
        self.stop_threads = threading.Event()
        self.mode = "idle"
        self.irr_lock = threading.Lock()
        self.irr_last = -1e9
        self.specs = list(specs)
        self.logs = {}
        self.workers = {}
        for i, spec in enumerate(self.specs):
            klog = KernelLog(self.conn, luid_base + i, spec.uuid, spec.ctr_text(), spec.region_count,
                             timeout=config.timeout, reconnect_interval=config.reconnect_interval,
                             stop=self.abort_event, recorder=recorder)
            self.logs[spec.uuid] = klog
            self.workers[spec.uuid] = LogWorker(self, spec, klog, own_ranges[spec.uuid])

    def irr_permit(self, now):
        with self.irr_lock:
            if now - self.irr_last < self.config.irr_limit:
                return False
            self.irr_last = now
            return True

    def set_deadline(self, deadline):
        for klog in self.logs.values():
            klog.deadline = deadline

    def construct_all(self):
        """CTR + GET_REGION_SIZE + RESUME for every log, as a table load and resume do.
        Returns {uuid: error} for the logs that failed (empty when all succeeded)."""
        failed = {}
        for spec in self.specs:
            error, _payload = self.logs[spec.uuid].construct(spec.region_size)
            if error:
                failed[spec.uuid] = error
        return failed

    def start(self, mode="load"):
        self.mode = mode
        for w in self.workers.values():
            w.thread.start()
            w.reader.start()

    def set_mode(self, mode):
        self.mode = mode

    def wait_quiescent(self, timeout):
        self.mode = "quiet"
        deadline = time.monotonic() + timeout
        for w in self.workers.values():
            while not (w.quiescent.is_set() or w.finished.is_set()):
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.02)
        return True

    def stop(self, timeout=10.0):
        """Stops workers and readers (after `wait_quiescent` this loses nothing). Returns True if they
        all ended in time; otherwise aborts their pending calls."""
        self.stop_threads.set()
        deadline = time.monotonic() + timeout
        ok = True
        for w in self.workers.values():
            for t in (w.thread, w.reader):
                if t.is_alive():
                    t.join(max(0.0, deadline - time.monotonic()))
                    ok = ok and not t.is_alive()
        if not ok:
            self.abort()
        return ok

    def abort(self):
        self.abort_event.set()
        self.stop_threads.set()

    def suspend_and_destroy(self, within=None):
        """PRESUSPEND, POSTSUSPEND, DTR for each log (a clean 'dmsetup remove'). Returns {uuid: error}.
        `within` bounds each request (then the failure names it 'no reply')."""
        failed = {}
        for uuid, klog in self.logs.items():
            for rtype in (PRESUSPEND, POSTSUSPEND, DTR):
                try:
                    error, _ = klog.call(rtype, within=within)
                except Aborted as why:
                    failed[uuid] = (ulog.TYPE_NAMES[rtype], f"no reply: {why}")
                    break
                if error:
                    failed[uuid] = (ulog.TYPE_NAMES[rtype], error)
                    break
        return failed

    def close(self, reason="closed"):
        self.conn.close(reason)

    def stats(self):
        total = {}
        for w in self.workers.values():
            for k, v in w.stats.items():
                total[k] = total.get(k, 0) + v
        return total


def split_ranges(region_count, nodes):
    """Node k (1-based) of `nodes` writes to [(k-1)N/n, kN/n)."""
    return {k: ((k - 1) * region_count // nodes, k * region_count // nodes) for k in range(1, nodes + 1)}
