#!/usr/bin/env python3
"""The kernel's side of the dm-log-userspace wire protocol, as a Python client of mirrorlogd's test
transport (`--kernel-socket`: a Unix SOCK_SEQPACKET socket carrying the netlink connector's bytes).

Stdlib only. The wire codec (framing, request types, payloads) is the one Tests/host/daemon_socket_test.py
also uses, Tests/pylib/ulog_wire.py; this module re-exports its names and adds what a workload needs:

- `Connection`: one socket per node (the kernel has one connector for all logs), a global seq counter,
  a reader thread that matches replies by seq (replies may come out of order across logs), pipelining
  from several threads, and a `Recorder` hook that sees every send and every reply.
- `KernelLog`: one log as dm-log-userspace drives it: every request has a timeout after which it is
  re-sent with a NEW seq (a late reply to the old seq is recorded but not used); -EAGAIN is re-sent;
  when the daemon is gone (connection refused/closed) or answers -ESRCH, it waits, re-sends CTR in the
  reconnect form (the saved string NUL-terminated, no reply buffer: a reply carrying data is a protocol
  violation), then RESUME, then the original request — like userspace_do_request() after a daemon restart.
"""
import os
import socket
import sys
import threading
import time
from pathlib import Path

_PYLIB = str(Path(__file__).resolve().parent.parent / "pylib")
if _PYLIB not in sys.path:
    sys.path.insert(0, _PYLIB)
# The wire names are re-exported: checker.py, raid1_driver.py and multinode_suite.py take them from here.
from ulog_wire import (CLEAR, CTR, DTR, EAGAIN, EINVAL, EIO, ESRCH, FLUSH, GET_REGION_SIZE,  # noqa: E402,F401
                       GET_RESYNC_WORK, GET_SYNC_COUNT, I64, IN_SYNC, IS_CLEAN, IS_REMOTE_RECOVERING, MARK,
                       POSTSUSPEND, PRESUSPEND, PROTOCOL_VERSION, REMOTE_RECOVERING, RESUME, RESYNC_WORK,
                       SET_REGION_SYNC, STATUS_INFO, STATUS_TABLE, TYPE_NAMES, U64, FramingError, decode_answer,
                       decode_args, decode_reply, decode_request, encode_frame, encode_reply, region_sync, u64s)

# Requests that change the log's state (dm-raid1 issues them from its single worker per log).
STATE_CHANGING = {MARK, CLEAR, FLUSH, GET_RESYNC_WORK, SET_REGION_SYNC}
# Requests whose failure the kernel cannot absorb (an error here is a failed write or a failed table).
MUST_SUCCEED = {MARK, CLEAR, FLUSH, CTR, RESUME, PRESUSPEND, POSTSUSPEND, DTR}


def validate_reply(rtype, reconnect_form, region_count, reply):
    """Returns a description of what is wrong with a successful reply's data, or None."""
    payload, error = reply["payload"], reply["error"]
    if error != 0:
        return None
    size = len(payload)
    if rtype == CTR:
        if reconnect_form and size:
            return f"reconnect-form CTR answered with {size} bytes of payload (the kernel passes no buffer: -ENOSPC)"
        if size > 128:
            return f"CTR payload of {size} bytes exceeds 128"
        return None
    if rtype in (IS_CLEAN, IN_SYNC):
        if size != 8:
            return f"{TYPE_NAMES[rtype]} payload of {size} bytes (want 8)"
        value = I64.unpack(payload)[0]
        return None if value in (0, 1) else f"{TYPE_NAMES[rtype]} answered {value} (want exactly 0 or 1)"
    if rtype == GET_SYNC_COUNT:
        if size != 8:
            return f"GET_SYNC_COUNT payload of {size} bytes"
        value = U64.unpack(payload)[0]
        return None if region_count is None or value <= region_count else f"GET_SYNC_COUNT {value} > {region_count} regions"
    if rtype == GET_RESYNC_WORK:
        if size != 16:
            return f"GET_RESYNC_WORK payload of {size} bytes"
        found, region = RESYNC_WORK.unpack(payload)
        if found not in (0, 1):
            return f"GET_RESYNC_WORK i={found}"
        if found and region_count is not None and region >= region_count:
            return f"GET_RESYNC_WORK handed out region {region} of {region_count}"
        return None
    if rtype == IS_REMOTE_RECOVERING:
        if size != 16:
            return f"IS_REMOTE_RECOVERING payload of {size} bytes"
        rec, hint = REMOTE_RECOVERING.unpack(payload)
        if rec not in (0, 1):
            return f"IS_REMOTE_RECOVERING is_recovering={rec}"
        if region_count is not None and hint > region_count:
            return f"IS_REMOTE_RECOVERING hint {hint} > {region_count} regions"
        return None
    if rtype == GET_REGION_SIZE:
        return None if size == 8 else f"GET_REGION_SIZE payload of {size} bytes"
    if rtype in (STATUS_INFO, STATUS_TABLE):
        return None if size <= 332 else f"status of {size} bytes"
    if size:
        return f"{TYPE_NAMES.get(rtype, rtype)} answered with {size} bytes of payload (want none)"
    return None


# ------------------------------------------------------------ recording ----

class Record:
    """One request (one seq) and what became of it."""
    __slots__ = ("id", "node", "log", "rtype", "args", "seq", "gen", "send", "reply", "error", "answer",
                 "payload_len", "call", "kind", "accepted", "replies", "problem")

    def __init__(self, **kw):
        for name in self.__slots__:
            setattr(self, name, kw.get(name))
        if self.replies is None:
            self.replies = 0

    def __repr__(self):
        name = TYPE_NAMES.get(self.rtype, self.rtype)
        return (f"<req #{self.id} node{self.node} {self.log} {name}{list(self.args or ())} seq={self.seq} "
                f"sent={self.send:.3f} reply={'-' if self.reply is None else f'{self.reply:.3f}'} "
                f"err={self.error} ans={self.answer} kind={self.kind}>")


class Recorder:
    """Thread-safe log of every request, every reply and every event, on the host's monotonic clock."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.lock = threading.Lock()
        self.records = []
        self.by_gen_seq = {}
        self.events = []          # (time, kind, node, detail)
        self.problems = []        # (time, category, text): protocol violations seen on the wire
        self.gen_end = {}         # connection generation -> (time, reason)
        self.next_call = 0

    def new_call(self):
        with self.lock:
            self.next_call += 1
            return self.next_call

    def event(self, kind, node=None, detail=""):
        with self.lock:
            self.events.append((self.clock(), kind, node, detail))

    def problem(self, category, text):
        with self.lock:
            self.problems.append((self.clock(), category, text))

    def sent(self, **kw):
        with self.lock:
            rec = Record(id=len(self.records), **kw)
            self.records.append(rec)
            self.by_gen_seq[(rec.gen, rec.seq)] = rec
            return rec

    def replied(self, gen, reply, when):
        """Files a reply; returns the record it answers, or None for a seq never sent."""
        with self.lock:
            rec = self.by_gen_seq.get((gen, reply["seq"]))
            if rec is None:
                self.problems.append((when, "reply", f"gen {gen}: reply to seq {reply['seq']} that was never sent: "
                                      f"type {reply['type']} uuid {reply['uuid']}"))
                return None
            rec.replies += 1
            if rec.replies > 1:
                self.problems.append((when, "reply", f"duplicate reply #{rec.replies} to {rec!r}"))
                return rec
            rec.reply = when
            rec.error = reply["error"]
            rec.payload_len = len(reply["payload"])
            rec.answer = decode_answer(rec.rtype, reply["payload"]) if reply["error"] == 0 else None
            return rec

    def end_generation(self, gen, reason):
        with self.lock:
            self.gen_end.setdefault(gen, (self.clock(), reason))

    def snapshot(self):
        with self.lock:
            return list(self.records), list(self.events), list(self.problems), dict(self.gen_end)


# ----------------------------------------------------------- transport ----

class DaemonGone(Exception):
    """The connection to the daemon is closed or cannot be made (the kernel's -ESRCH)."""


class Aborted(Exception):
    """The driver was told to stop while waiting."""


class Pending:
    __slots__ = ("record", "event", "reply", "lost", "header")

    def __init__(self, record, header):
        self.record = record
        self.header = header
        self.event = threading.Event()
        self.reply = None
        self.lost = False


_generation_lock = threading.Lock()
_generation_counter = [0]


def _next_generation():
    with _generation_lock:
        _generation_counter[0] += 1
        return _generation_counter[0]


class Connection:
    """The kernel end of one node's daemon: a reconnectable SOCK_SEQPACKET client with a reader thread.

    Every connect starts a new generation; requests of a generation that ends (the daemon closed the
    socket or died) are woken with `lost` and must be re-sent by the caller, as after a kernel timeout.
    """

    def __init__(self, node, path, recorder, region_counts=None):
        self.node = node
        self.path = path
        self.recorder = recorder
        self.region_counts = region_counts if region_counts is not None else {}
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.sock = None
        self.gen = None
        self.pending = {}
        self.seq = 0
        self.closed = False
        self.connected = threading.Condition(self.lock)

    def try_connect(self):
        """Connects if not connected; returns the generation or raises DaemonGone."""
        with self.lock:
            if self.closed:
                raise Aborted("connection closed")
            if self.sock is not None:
                return self.gen
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                sock.connect(self.path)
            except OSError as error:
                sock.close()
                raise DaemonGone(f"cannot connect to {self.path}: {error}") from None
            self.sock = sock
            self.gen = _next_generation()
            gen = self.gen
        self.recorder.event("connected", self.node, f"gen {gen}")
        threading.Thread(target=self._reader, args=(sock, gen), daemon=True, name=f"reader-n{self.node}-g{gen}").start()
        return gen

    def current_generation(self):
        with self.lock:
            return self.gen if self.sock is not None else None

    def submit(self, luid, uuid, rtype, payload, version=PROTOCOL_VERSION, call=None, kind="normal"):
        """Sends one request with a fresh seq; returns its Pending. Raises DaemonGone if not connected."""
        with self.lock:
            if self.closed:
                raise Aborted("connection closed")
            if self.sock is None:
                raise DaemonGone("not connected")
            self.seq = (self.seq + 1) & 0xFFFFFFFF or 1
            seq, gen, sock = self.seq, self.gen, self.sock
            rec = self.recorder.sent(node=self.node, log=uuid, rtype=rtype, args=decode_args(rtype, payload), seq=seq,
                                     gen=gen, send=self.recorder.clock(), call=call, kind=kind)
            pending = Pending(rec, (luid, uuid, rtype, version))
            self.pending[seq] = pending
        data = encode_frame(luid, uuid, rtype, payload, version=version, seq=seq)
        try:
            with self.send_lock:
                sock.send(data)
        except OSError as error:
            self._drop(sock, gen, f"send failed: {error}")
            raise DaemonGone(f"send failed: {error}") from None
        return pending

    def forget(self, pending):
        """The caller gave up on this seq (timeout): a later reply is recorded but wakes nobody."""
        with self.lock:
            if self.pending.get(pending.record.seq) is pending:
                del self.pending[pending.record.seq]

    def _reader(self, sock, gen):
        while True:
            try:
                data = sock.recv(1 << 16)
            except OSError as error:
                self._drop(sock, gen, f"receive failed: {error}")
                return
            if not data:
                self._drop(sock, gen, "daemon closed the connection")
                return
            when = self.recorder.clock()
            try:
                reply = decode_reply(data)
            except FramingError as error:
                self.recorder.problem("reply", f"node {self.node} gen {gen}: {error}")
                continue
            rec = self.recorder.replied(gen, reply, when)
            with self.lock:
                pending = self.pending.pop(reply["seq"], None) if self.gen == gen else None
            if rec is not None and rec.replies == 1:
                luid_uuid_type = (reply["luid"], reply["uuid"], reply["type"], reply["version"])
                expected = pending.header if pending is not None else None
                if expected is not None and luid_uuid_type != expected:
                    self.recorder.problem("reply", f"node {self.node}: reply header {luid_uuid_type} does not echo request {expected} ({rec!r})")
                elif expected is None and (reply["uuid"], reply["type"]) != (rec.log, rec.rtype):
                    self.recorder.problem("reply", f"node {self.node}: late reply header ({reply['uuid']}, {reply['type']}) does not echo {rec!r}")
                why = validate_reply(rec.rtype, rec.kind == "reconnect-ctr", self.region_counts.get(rec.log), reply)
                if why:
                    rec.problem = why
                    self.recorder.problem("reply", f"node {self.node}: {why}: {rec!r}")
            if pending is not None:
                pending.reply = reply
                pending.event.set()

    def _drop(self, sock, gen, why):
        with self.lock:
            if self.sock is not sock:
                return
            self.sock = None
            lost = [p for p in self.pending.values()]
            self.pending.clear()
        try:
            sock.close()
        except OSError:
            pass
        self.recorder.end_generation(gen, "lost")
        self.recorder.event("connection-lost", self.node, f"gen {gen}: {why}")
        for p in lost:
            p.lost = True
            p.event.set()

    def close(self, reason="closed"):
        """Closes for good (the driver is done with this daemon); pending requests are woken as lost."""
        with self.lock:
            self.closed = True
            sock, gen = self.sock, self.gen
            self.sock = None
            lost = list(self.pending.values())
            self.pending.clear()
        if sock is not None:
            self.recorder.end_generation(gen, reason)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        for p in lost:
            p.lost = True
            p.event.set()

    def outstanding(self):
        with self.lock:
            return len(self.pending)


class KernelLog:
    """One mirror log of one node, driven as dm-log-userspace does (see the module docstring).

    `call()` returns (error, payload) for the reply it accepted. It blocks through daemon holds, timeouts
    (re-sent with a new seq) and daemon restarts (reconnect CTR + RESUME), until `stop` is set or the
    `deadline` (monotonic seconds, optional) passes, then raises Aborted.
    """

    def __init__(self, conn, luid, uuid, ctr_text, region_count, *, timeout=15.0, reconnect_interval=2.0,
                 stop=None, version=PROTOCOL_VERSION, recorder=None):
        self.conn = conn
        self.luid = luid
        self.uuid = uuid
        self.ctr_text = ctr_text
        self.region_count = region_count
        self.timeout = timeout
        self.reconnect_interval = reconnect_interval
        self.stop = stop or threading.Event()
        self.version = version
        self.recorder = recorder or conn.recorder
        self.constructed_gen = None   # generation on which CTR+RESUME last succeeded
        self.reconnect_lock = threading.Lock()
        self.resumes = 0              # how often this log was resumed (the kernel resets in_sync_hint then)
        self.reconnects = 0
        self.deadline = None
        self._local = threading.local()  # per calling thread: `within` of the current call
        conn.region_counts[uuid] = region_count

    def _check_stop(self):
        if self.stop.is_set():
            raise Aborted("stopped")
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise Aborted("deadline passed")
        until = getattr(self._local, "until", None)
        if until is not None and now > until:
            raise Aborted(f"no reply within the caller's limit ({self.uuid})")

    def _sleep(self, seconds):
        if self.stop.wait(seconds):
            raise Aborted("stopped")

    def _once(self, rtype, payload, call, kind):
        """Sends until a reply is accepted (re-sending after timeouts and -EAGAIN). Raises DaemonGone."""
        while True:
            self._check_stop()
            pending = self.conn.submit(self.luid, self.uuid, rtype, payload, self.version, call=call, kind=kind)
            limit = time.monotonic() + self.timeout
            while not pending.event.is_set():
                self._check_stop()
                left = limit - time.monotonic()
                if left <= 0:
                    break
                pending.event.wait(min(left, 0.2))
            if not pending.event.is_set():
                self.conn.forget(pending)
                self.recorder.event("timeout", self.conn.node, f"{TYPE_NAMES[rtype]} seq {pending.record.seq} {self.uuid}: re-sending with a new seq")
                kind = "resend-timeout"
                continue
            if pending.lost:
                raise DaemonGone("connection lost with the request outstanding")
            reply = pending.reply
            pending.record.accepted = True
            if reply["error"] == -EAGAIN:
                self._sleep(0.05)
                kind = "resend-eagain"
                continue
            if reply["error"] == -ESRCH:
                raise DaemonGone("daemon answered -ESRCH (log unknown)")
            return reply["error"], reply["payload"]

    def construct(self, region_size=None):
        """CTR (normal form, with a reply buffer) and GET_REGION_SIZE, as userspace_ctr() sends them at
        table load, then RESUME as at resume. Returns (error, CTR payload)."""
        call = self.recorder.new_call()
        gen = self.conn.try_connect()
        error, payload = self._once(CTR, self.ctr_text.encode(), call, "ctr")
        if error:
            return error, payload
        error, size = self._once(GET_REGION_SIZE, b"", self.recorder.new_call(), "normal")
        if region_size is not None and (error or decode_answer(GET_REGION_SIZE, size) != region_size):
            self.recorder.problem("reply", f"node {self.conn.node}: GET_REGION_SIZE of {self.uuid} answered error {error}, "
                                           f"size {decode_answer(GET_REGION_SIZE, size)}; the table says {region_size}")
        error, _ = self._once(RESUME, b"", self.recorder.new_call(), "resume")
        if not error:
            self.constructed_gen = gen
            self.resumes += 1
        return error, payload

    def _reconnect(self, seen_gen):
        """The kernel's -ESRCH path: wait, CTR with the NUL-terminated string and no buffer, RESUME."""
        while not self.reconnect_lock.acquire(timeout=0.2):
            self._check_stop()
        try:
            while True:
                self._check_stop()
                gen = self.conn.current_generation()
                if gen is not None and gen == self.constructed_gen and gen != seen_gen:
                    return  # another thread of this log already reconnected on this generation
                self._sleep(self.reconnect_interval)
                try:
                    gen = self.conn.try_connect()
                    call = self.recorder.new_call()
                    error, _ = self._once(CTR, self.ctr_text.encode() + b"\0", call, "reconnect-ctr")
                    if error:
                        self.recorder.event("reconnect-ctr-failed", self.conn.node, f"{self.uuid}: error {error}")
                        continue
                    error, _ = self._once(RESUME, b"", self.recorder.new_call(), "resume")
                    if error:
                        self.recorder.event("reconnect-resume-failed", self.conn.node, f"{self.uuid}: error {error}")
                        continue
                except DaemonGone:
                    continue
                self.constructed_gen = gen
                self.resumes += 1
                self.reconnects += 1
                self.recorder.event("reconnected", self.conn.node, f"{self.uuid} gen {gen}")
                return
        finally:
            self.reconnect_lock.release()

    def call(self, rtype, payload=b"", within=None):
        """One request as the kernel makes it. `within` (seconds) bounds this call for the orchestrator:
        past it, Aborted is raised (the kernel itself would keep re-sending)."""
        call = self.recorder.new_call()
        kind = "normal"
        self._local.until = None if within is None else time.monotonic() + within
        try:
            while True:
                self._check_stop()
                seen = self.conn.current_generation()
                try:
                    if seen is None:
                        raise DaemonGone("not connected")
                    return self._once(rtype, payload, call, kind)
                except DaemonGone:
                    self._reconnect(seen)
                    kind = "resend-reconnect"
        finally:
            self._local.until = None

    # Convenience wrapper returning the decoded answer (None on error).
    def answer(self, rtype, payload=b"", within=None):
        error, data = self.call(rtype, payload, within)
        return error, (decode_answer(rtype, data) if error == 0 else None)


def wait_for_socket(path, timeout, alive=lambda: True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                probe.connect(path)
            except OSError:
                pass
            else:
                probe.close()
                return True
            finally:
                probe.close()
        if not alive():
            return False
        time.sleep(0.05)
    return False


# ------------------------------------------------------------ self-test ----

def self_test(verbose=False):
    """Drives KernelLog against a scripted fake daemon: a held request re-sent after the timeout (both
    seqs answered, the late one recorded, not used), -EAGAIN re-sent, -ESRCH answered by the reconnect
    CTR (NUL-terminated) + RESUME then the request, a connection closed with a request outstanding, a
    duplicate reply and a reply to a seq never sent (both flagged). Returns a list of failures."""
    import tempfile
    failures = []
    workdir = tempfile.mkdtemp(prefix="mldms-ulog.")
    path = os.path.join(workdir, "fake.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(2)
    seen = []
    state = {"held": None, "eagain": 0, "esrch": 0, "closed": 0}

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                req = decode_request(data)
                seen.append((req["type"], req["seq"], req["payload"]))
                t = req["type"]
                if t == MARK and state["held"] is None:
                    state["held"] = req           # hold it past the client's timeout
                    continue
                if t == MARK:
                    conn.send(encode_reply(state["held"]))  # late reply to the abandoned seq
                    conn.send(encode_reply(req))
                    continue
                if t == FLUSH and state["eagain"] == 0:
                    state["eagain"] += 1
                    conn.send(encode_reply(req, -EAGAIN))
                    continue
                if t == CLEAR and state["esrch"] == 0:
                    state["esrch"] += 1
                    conn.send(encode_reply(req, -ESRCH))
                    continue
                if t == IS_CLEAN and state["closed"] == 0:
                    state["closed"] += 1
                    conn.close()                  # the daemon dies with the request outstanding
                    break
                if t == IN_SYNC:
                    conn.send(encode_reply(req, 0, I64.pack(1)))
                    conn.send(encode_reply(req, 0, I64.pack(1)))                # duplicate
                    conn.send(encode_reply(dict(req, seq=req["seq"] + 1000)))  # never sent
                    continue
                if t == IS_CLEAN:
                    conn.send(encode_reply(req, 0, I64.pack(1)))
                    continue
                conn.send(encode_reply(req))

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    recorder = Recorder()
    conn = Connection(1, path, recorder)
    klog = KernelLog(conn, 7, "LVM-selftest", "2048 clustered-core 1024", 2, timeout=0.5, reconnect_interval=0.1)
    klog.deadline = time.monotonic() + 20

    def expect(what, condition):
        if not condition:
            failures.append(what)
        elif verbose:
            print(f"  ulog self-test: {what}")

    try:
        klog.construct()
        expect("CTR + GET_REGION_SIZE + RESUME answered", klog.constructed_gen is not None)
        expect("held MARK re-sent with a new seq after the timeout", klog.call(MARK, u64s(1)) == (0, b""))
        expect("-EAGAIN FLUSH re-sent", klog.call(FLUSH) == (0, b""))
        expect("-ESRCH CLEAR answered after a reconnect", klog.call(CLEAR, u64s(1)) == (0, b""))
        expect("IS_CLEAN answered after the daemon closed the connection", klog.answer(IS_CLEAN, u64s(0)) == (0, 1))
        expect("IN_SYNC answered", klog.answer(IN_SYNC, u64s(0)) == (0, 1))
        time.sleep(0.2)
        records, events, problems, gen_end = recorder.snapshot()
        marks = [r for r in records if r.rtype == MARK]
        expect("two MARK seqs, the first answered late and not accepted",
               len(marks) == 2 and marks[0].seq != marks[1].seq and marks[0].reply is not None
               and not marks[0].accepted and marks[1].accepted and marks[1].kind == "resend-timeout")
        kinds = [(TYPE_NAMES[t], p.endswith(b"\0")) for t, _, p in seen if t == CTR]
        expect("reconnect CTRs are NUL-terminated, the first is not",
               kinds and kinds[0] == ("CTR", False) and len(kinds) >= 3 and all(nul for _, nul in kinds[1:]))
        expect("RESUME follows each reconnect CTR", [TYPE_NAMES[t] for t, _, _ in seen].count("RESUME") == len(kinds))
        expect("a connection generation ended as lost", any(reason == "lost" for _, reason in gen_end.values()))
        expect("duplicate reply flagged", any("duplicate reply" in text for _, _, text in problems))
        expect("reply to a seq never sent flagged", any("never sent" in text for _, _, text in problems))
        expect("recorded seqs are unique per generation", len({(r.gen, r.seq) for r in records}) == len(records))
    except Exception as error:  # noqa: BLE001
        failures.append(f"exception: {error!r}")
    finally:
        conn.close()
        listener.close()
        try:
            os.unlink(path)
            os.rmdir(workdir)
        except OSError:
            pass
    return failures


if __name__ == "__main__":
    problems = self_test(verbose=True)
    for p in problems:
        print("FAIL", p)
    print("ulog self-test:", "FAIL" if problems else "PASS")
    sys.exit(1 if problems else 0)
