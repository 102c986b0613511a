#!/usr/bin/env python3
"""Checks a recorded request history of clustered mirror logs against the log's safety invariants.

Input: the `ulog.Recorder` records (one per seq: node, log, type, args, send time, reply time, error,
answer, whether the driver accepted that reply), the wire problems the recorder saw, how each connection
generation ended, and the faults the orchestrator injected. All times are the host's monotonic clock,
which every node shares (they are namespaces of one host).

Invariants (categories in brackets):

- [is_clean] a region marked by a live member (MARK, or FLUSH carrying marks, answered OK; CLEAR not
  yet sent; member not failed since) is never answered IS_CLEAN=1 by any node, for an IS_CLEAN sent
  after that mark's reply and answered before the CLEAR was sent.
- [resync] GET_RESYNC_WORK hands a region to at most one live member at a time: a grant lasts from its
  reply to that member's SET_REGION_SYNC for the region (send time), or to the member's failure.
  Two grants of one region to members of different nodes overlap iff each reply precedes the other's end.
- [remote_recovering] while a region is granted to a live member of another node, IS_REMOTE_RECOVERING
  (sent after the grant's reply, answered before its end) must not answer is_recovering=0 for it, nor an
  in_sync_hint above it, whichever region was asked (the kernel then treats every region below the hint
  as not recovering without asking again, until the next resume).
- [error] MARK, CLEAR, FLUSH, CTR, RESUME, PRESUSPEND, POSTSUSPEND and DTR are never answered with an
  error (-EAGAIN and -ESRCH are the kernel's retry paths, not failures).
- [reply] at most one reply per seq, echoing the request's header, with well-formed data; no reply to a
  seq never sent; at the end no request is unanswered unless its connection was lost with its daemon,
  or (unless strict_replies) it was superseded: re-sent after a timeout with a newer seq that was
  answered (the kernel drops late replies; the daemon answers the newest copy of a held request).
- [held] a node that is not quorate (orchestrator windows, with a grace period) answers no ordered
  request (MARK, CLEAR, FLUSH, GET_RESYNC_WORK, SET_REGION_SYNC, IS_CLEAN, IS_REMOTE_RECOVERING).

"Live" = not fenced: from a membership-breaking fault of its node (corosync killed, partitioned; with
--kill-ends-marks also its daemon killed) a member's marks and grants stop binding; its marks bind again
once the node has rejoined (see Faults). A killed daemon alone does not end its node's marks and grants:
the node's kernel still writes and recovers, and the restarted daemon adopts them.
"""
import bisect
import collections
import math

import ulog
from ulog import (CLEAR, FLUSH, GET_RESYNC_WORK, IS_CLEAN, IS_REMOTE_RECOVERING, MARK, SET_REGION_SYNC,
                  TYPE_NAMES, MUST_SUCCEED, EAGAIN, ESRCH)

INF = math.inf
CATEGORIES = ("is_clean", "resync", "remote_recovering", "error", "reply", "held", "liveness", "agreement",
              "sync", "daemon", "driver")


class Report:
    def __init__(self):
        self.violations = []   # (category, text)
        self.warnings = []
        self.counts = collections.Counter()

    def add(self, category, text, relax=()):
        if category in relax:
            self.warnings.append((category, text))
        else:
            self.violations.append((category, text))

    def by_category(self):
        return collections.Counter(c for c, _ in self.violations)

    def summary(self, limit=12):
        lines = []
        for category, text in self.violations[:limit]:
            lines.append(f"  VIOLATION [{category}] {text}")
        if len(self.violations) > limit:
            lines.append(f"  ... and {len(self.violations) - limit} more violation(s): {dict(self.by_category())}")
        shown = collections.Counter()
        for category, text in self.warnings:
            shown[category] += 1
            if shown[category] <= 3:
                lines.append(f"  warning [{category}] {text}")
        extra = {c: n - 3 for c, n in shown.items() if n > 3}
        if extra:
            lines.append(f"  ... and more warning(s) of the same kinds: {extra}")
        return "\n".join(lines)


# Faults after which a node's marks and grants stop binding the others: the node is gone from the
# quorate side's view (in this test harness that stands for "fenced"). A killed daemon on a node that
# stays up is NOT one of them: its kernel keeps writing the regions it marked and keeps recovering its
# region, so they stay protected until the restarted daemon (which adopts them) sees the CLEAR or
# SET_REGION_SYNC (Docs/cluster.md, "Leave and failure"). --kill-ends-marks adds "daemon-kill".
CAPPING_KINDS = frozenset({"corosync-kill", "partition"})
# Requests a node without quorum must hold: the ordered ones (Docs/cluster.md, "Ordering").
HELD_TYPES = frozenset(ulog.STATE_CHANGING | {IS_CLEAN, IS_REMOTE_RECOVERING})


class Faults:
    """Fence windows per node, from membership-breaking faults.

    A fault is (start, node, kind) or (start, node, kind, lifted): `start` is taken before the fault was
    injected, `lifted` when it was undone (heal, corosync started; None: never). From `start` the node
    counts as fenced: its marks and grants stop binding the others. Its marks bind again once it has
    rejoined — the first successful ordered reply to that node after `lifted` — because the rejoining
    daemon re-marks what its kernel still holds before anything else (Docs/cluster.md, "Join"). Its
    grants do not come back: a failed recoverer's region is handed out again."""

    def __init__(self, faults=(), capping=CAPPING_KINDS, records=()):
        self.windows = collections.defaultdict(list)   # node -> [(start, rejoin)]
        firsts = collections.defaultdict(list)          # node -> sorted reply times of ordered requests
        for rec in records:
            if rec.rtype in HELD_TYPES and _ok(rec):
                firsts[rec.node].append(rec.reply)
        for times in firsts.values():
            times.sort()
        for fault in faults:
            when, node, kind = fault[:3]
            lifted = fault[3] if len(fault) > 3 else None
            if kind not in capping:
                continue
            rejoin = INF
            if lifted is not None:
                times = firsts.get(node, [])
                i = bisect.bisect_left(times, lifted)
                rejoin = times[i] if i < len(times) else INF
            self.windows[node].append((when, rejoin))
        for node in self.windows:
            self.windows[node].sort()

    def pieces(self, node, start, end, rebind=True):
        """The parts of [start, end) during which an interval of `node` binds the others."""
        parts = [(start, end)]
        for f0, f1 in self.windows.get(node, ()):
            cut = []
            for s, e in parts:
                if e <= f0 or (rebind and s >= f1):
                    cut.append((s, e))
                    continue
                if s < f0:
                    cut.append((s, f0))
                if rebind and f1 < e:
                    cut.append((max(s, f1), e))
            parts = cut
        return [(s, e) for s, e in parts if e > s]


def _ok(rec):
    return rec.reply is not None and rec.error == 0 and rec.replies >= 1


def _intervals(records, faults):
    """Mark intervals per (log, region) and grant intervals per (log, region), from accepted replies,
    cut to the times they bind (see Faults)."""
    marks = collections.defaultdict(list)     # (log, region) -> [(start, end, node, rec)]
    grants = collections.defaultdict(list)
    clears = collections.defaultdict(list)    # (node, log, region) -> sorted send times of CLEARs
    set_sync = collections.defaultdict(list)  # (node, log, region) -> sorted send times of SET_REGION_SYNC
    for rec in records:
        if rec.rtype == CLEAR:
            for region in rec.args:
                clears[(rec.node, rec.log, region)].append(rec.send)
        elif rec.rtype == SET_REGION_SYNC and rec.args:
            set_sync[(rec.node, rec.log, rec.args[0])].append(rec.send)
    for table in (clears, set_sync):
        for times in table.values():
            times.sort()

    def first_after(table, key, start):
        times = table.get(key)
        if not times:
            return INF
        i = bisect.bisect_right(times, start)
        return times[i] if i < len(times) else INF

    for rec in records:
        if not (_ok(rec) and rec.accepted):
            continue
        if rec.rtype in (MARK, FLUSH) and rec.args:
            for region in rec.args:
                # The CLEAR that ends this mark is the first one sent after the MARK was sent.
                end = first_after(clears, (rec.node, rec.log, region), rec.send)
                for s, e in faults.pieces(rec.node, rec.reply, end, rebind=True):
                    marks[(rec.log, region)].append((s, e, rec.node, rec))
        elif rec.rtype == GET_RESYNC_WORK and rec.answer and rec.answer[0] == 1:
            region = rec.answer[1]
            end = first_after(set_sync, (rec.node, rec.log, region), rec.reply)
            for s, e in faults.pieces(rec.node, rec.reply, end, rebind=False):
                grants[(rec.log, region)].append((s, e, rec.node, rec))
    return marks, grants


def check_history(records, problems=(), gen_end=None, faults=(), inquorate=(), relax=(), hold_grace=1.0,
                  allow_unanswered_gens=(), capping=CAPPING_KINDS, strict_replies=False):
    """Runs every invariant over a history. Returns a Report."""
    report = Report()
    gen_end = gen_end or {}
    fault_index = Faults(faults, capping, records)
    marks, grants = _intervals(records, fault_index)

    report.counts["requests"] = len(records)
    report.counts["resynced"] = sum(1 for r in records if r.rtype == SET_REGION_SYNC and _ok(r) and r.accepted
                                    and len(r.args) == 2 and r.args[1] == 1)
    report.counts["timeouts"] = sum(1 for r in records if r.kind == "resend-timeout")
    report.counts["resends"] = sum(1 for r in records if r.kind and r.kind.startswith("resend"))
    report.counts["reconnect_ctr"] = sum(1 for r in records if r.kind == "reconnect-ctr")

    # [is_clean]
    for rec in records:
        if rec.rtype != IS_CLEAN or not _ok(rec) or rec.answer != 1 or not rec.args:
            continue
        for start, end, node, mark in marks.get((rec.log, rec.args[0]), ()):
            if start < rec.send and rec.reply < end:
                report.add("is_clean", f"node {rec.node} answered IS_CLEAN({rec.args[0]})=1 on {rec.log} "
                                       f"(sent {rec.send:.3f}, answered {rec.reply:.3f}) while node {node} held a mark "
                                       f"(answered {mark.reply:.3f}, binding {start:.3f}..{end:.3f}: not cleared, node not fenced; "
                                       f"{TYPE_NAMES[mark.rtype]} seq {mark.seq})", relax)
                break

    # [resync]
    for (log, region), items in grants.items():
        items.sort(key=lambda g: g[0])
        for i, (a_start, a_end, a_node, a_rec) in enumerate(items):
            for b_start, b_end, b_node, b_rec in items[i + 1:]:
                if b_start >= a_end:
                    continue  # sorted by start; later ones may still overlap, keep scanning
                if a_node != b_node and a_start < b_end and b_start < a_end:
                    report.add("resync", f"region {region} of {log} granted to node {a_node} (seq {a_rec.seq}, "
                                         f"{a_start:.3f}..{a_end:.3f}) and to node {b_node} (seq {b_rec.seq}, "
                                         f"{b_start:.3f}..{b_end:.3f}) at the same time", relax)

    # [remote_recovering]
    grants_by_log = collections.defaultdict(list)
    for (log, region), items in grants.items():
        for start, end, node, rec in items:
            grants_by_log[log].append((start, end, node, region))
    for rec in records:
        if rec.rtype != IS_REMOTE_RECOVERING or not _ok(rec) or rec.answer is None or not rec.args:
            continue
        asked = rec.args[0]
        recovering, hint = rec.answer
        for start, end, node, region in grants_by_log.get(rec.log, ()):
            if node == rec.node or not (start < rec.send and rec.reply < end):
                continue
            if region == asked and not recovering:
                report.add("remote_recovering", f"node {rec.node}: IS_REMOTE_RECOVERING({asked}) on {rec.log} answered 0 "
                                                f"while node {node} was resyncing it ({start:.3f}..{end:.3f})", relax)
                break
            if region < hint:
                report.add("remote_recovering", f"node {rec.node}: IS_REMOTE_RECOVERING({asked}) on {rec.log} gave hint {hint} "
                                                f"above region {region}, which node {node} was resyncing ({start:.3f}..{end:.3f})", relax)
                break

    # [error]
    soft = collections.Counter()
    for rec in records:
        if rec.reply is None or not rec.error or rec.error in (-EAGAIN, -ESRCH):
            continue
        if rec.rtype in MUST_SUCCEED:
            report.add("error", f"node {rec.node}: {TYPE_NAMES[rec.rtype]}{list(rec.args)} on {rec.log} answered error {rec.error}"
                                f" (seq {rec.seq}, kind {rec.kind})", relax)
        else:
            soft[TYPE_NAMES.get(rec.rtype, rec.rtype)] += 1
    if soft:
        report.warnings.append(("error", f"error replies the kernel absorbs: {dict(soft)}"))
    report.counts["soft_errors"] = sum(soft.values())

    # [reply]
    for when, category, text in problems:
        report.add(category, text, relax)
    unanswered_lost = superseded = 0
    answered_calls = collections.defaultdict(list)   # call -> send times of its answered seqs
    for rec in records:
        if rec.replies and rec.call is not None:
            answered_calls[rec.call].append(rec.send)
    for rec in records:
        if rec.replies:
            continue
        end = gen_end.get(rec.gen)
        # "lost": the daemon closed the connection (killed, crashed, exited); "aborted": the scenario was
        # cut short (already a failure of its own).
        if (end is not None and end[1] in ("lost", "aborted")) or rec.gen in allow_unanswered_gens:
            unanswered_lost += 1
            continue
        # A seq the driver gave up on (timeout) whose call was answered under a newer seq: the kernel
        # drops a late reply to it anyway, and the daemon may answer only the newest copy.
        if not strict_replies and any(t > rec.send for t in answered_calls.get(rec.call, ())):
            superseded += 1
            continue
        report.add("reply", f"no reply to {rec!r}", relax)
    report.counts["unanswered_lost"] = unanswered_lost
    report.counts["superseded_unanswered"] = superseded

    # [held]
    for node, t0, t1 in inquorate:
        for rec in records:
            if rec.node != node or rec.rtype not in HELD_TYPES or not _ok(rec):
                continue
            if rec.send >= t0 + hold_grace and rec.reply <= t1:
                report.add("held", f"node {node} answered {TYPE_NAMES[rec.rtype]}{list(rec.args)} on {rec.log} while not quorate "
                                   f"(sent {rec.send:.3f}, answered {rec.reply:.3f}, inquorate {t0:.3f}..{t1:.3f})", relax)
    return report


# ------------------------------------------------------------ self-test ----

class _History:
    """Builds synthetic histories for the self-test."""

    def __init__(self):
        self.records = []
        self.seq = 0

    def req(self, node, rtype, args, send, reply, error=0, answer=None, log="L", kind="normal", accepted=True, gen=1):
        self.seq += 1
        rec = ulog.Record(id=len(self.records), node=node, log=log, rtype=rtype, args=tuple(args), seq=self.seq, gen=gen,
                          send=send, reply=reply, error=error if reply is not None else None, answer=answer,
                          payload_len=0, call=self.seq, kind=kind, accepted=accepted, replies=1 if reply is not None else 0)
        self.records.append(rec)
        return rec


def _clean_history():
    h = _History()
    h.req(1, MARK, [5, 6], 1.0, 1.1)
    h.req(1, FLUSH, [], 1.1, 1.2)
    h.req(2, IS_CLEAN, [5], 1.3, 1.4, answer=0)
    h.req(1, CLEAR, [5, 6], 2.0, 2.1)
    h.req(2, IS_CLEAN, [5], 1.9, 2.05, answer=1)      # answered after the CLEAR was sent: allowed
    h.req(2, IS_CLEAN, [5], 2.2, 2.3, answer=1)
    h.req(3, FLUSH, [9], 3.0, 3.1)                     # integrated flush mark
    h.req(1, IS_CLEAN, [9], 3.05, 3.2, answer=1)       # sent before the mark's reply: allowed
    h.req(2, GET_RESYNC_WORK, [], 4.0, 4.1, answer=(1, 7))
    h.req(3, IS_REMOTE_RECOVERING, [7], 4.2, 4.3, answer=(1, 7))
    h.req(2, SET_REGION_SYNC, [7, 1], 4.5, 4.6)
    h.req(1, GET_RESYNC_WORK, [], 4.55, 4.7, answer=(1, 7))  # after node 2's SET_REGION_SYNC was sent
    h.req(1, SET_REGION_SYNC, [7, 1], 4.8, 4.9)
    h.req(3, GET_RESYNC_WORK, [], 5.0, 5.1, answer=(1, 8))
    h.req(1, GET_RESYNC_WORK, [], 6.0, 6.1, answer=(1, 8))   # node 3 was killed at 5.5
    h.req(1, SET_REGION_SYNC, [8, 1], 6.2, 6.3)
    h.req(3, MARK, [20], 5.2, 5.3)                     # node 3 killed at 5.5: its mark ends there
    h.req(1, IS_CLEAN, [20], 6.0, 6.1, answer=1)
    h.req(2, MARK, [30], 7.0, None, gen=9)             # lost with its daemon
    h.req(2, MARK, [31], 7.1, 7.2)                     # node 2's daemon is killed at 7.5: the mark stays
    h.req(2, CLEAR, [31], 9.0, 9.1)
    return h, [(5.5, 3, "partition"), (7.5, 2, "daemon-kill")]


def self_test(verbose=False):
    """Each invariant must accept a clean history and flag its injected violation. Returns failures."""
    failures = []
    h, faults = _clean_history()
    base = check_history(h.records, gen_end={9: (7.5, "lost")}, faults=faults)
    if base.violations:
        failures.append(f"clean history flagged: {base.summary()}")

    def inject(name, category, build, gen_end=None, problems=(), inquorate=(), relax=()):
        h2, faults2 = _clean_history()
        build(h2)
        report = check_history(h2.records, problems=problems, gen_end=gen_end or {9: (7.5, "lost")}, faults=faults2,
                               inquorate=inquorate, relax=relax)
        got = report.by_category()
        if got.get(category, 0) < 1 or any(c != category for c in got):
            failures.append(f"{name}: expected one [{category}] violation, got {dict(got)}\n{report.summary()}")
        elif verbose:
            print(f"  self-test {name}: flagged as expected: {report.violations[0][1]}")
        return report

    inject("clean-while-marked", "is_clean", lambda h2: h2.req(3, IS_CLEAN, [6], 1.5, 1.6, answer=1))
    inject("clean-while-flush-marked", "is_clean", lambda h2: h2.req(2, IS_CLEAN, [9], 3.2, 3.3, answer=1))
    inject("double-grant", "resync", lambda h2: h2.req(3, GET_RESYNC_WORK, [], 4.2, 4.3, answer=(1, 7)))
    inject("grant-before-kill", "resync", lambda h2: h2.req(1, GET_RESYNC_WORK, [], 5.2, 5.4, answer=(1, 8)))
    inject("not-recovering", "remote_recovering", lambda h2: h2.req(3, IS_REMOTE_RECOVERING, [7], 4.2, 4.3, answer=(0, 7)))
    inject("hint-past-recovering", "remote_recovering", lambda h2: h2.req(3, IS_REMOTE_RECOVERING, [9], 4.2, 4.3, answer=(0, 10)))
    inject("clean-after-daemon-kill", "is_clean", lambda h2: h2.req(1, IS_CLEAN, [31], 8.0, 8.1, answer=1))
    inject("mark-eio", "error", lambda h2: h2.req(1, MARK, [40], 8.0, 8.1, error=-ulog.EIO))
    inject("missing-reply", "reply", lambda h2: h2.req(1, MARK, [41], 8.0, None, gen=2))
    inject("wire-problem", "reply", lambda h2: None, problems=[(1.0, "reply", "duplicate reply #2 to ...")])
    inject("answered-inquorate", "held", lambda h2: h2.req(3, MARK, [50], 12.0, 12.1), inquorate=[(3, 10.0, 14.0)])
    relaxed = inject("relaxed", "is_clean", lambda h2: (h2.req(3, IS_CLEAN, [6], 1.5, 1.6, answer=1),
                                                         h2.req(3, IS_REMOTE_RECOVERING, [7], 4.2, 4.3, answer=(0, 7))),
                     relax=("remote_recovering",))
    # A timed-out seq left unanswered because its re-sent copy was answered: allowed unless strict.
    h5 = _History()
    a = h5.req(2, MARK, [80], 1.0, None, gen=1)
    b = h5.req(2, MARK, [80], 9.0, 9.5, gen=1, kind="resend-timeout")
    b.call = a.call
    if check_history(h5.records).violations:
        failures.append("superseded seq flagged without strict_replies")
    if check_history(h5.records, strict_replies=True).by_category() != {"reply": 1}:
        failures.append("superseded seq not flagged with strict_replies")
    # A partitioned node's mark binds until the partition, not while fenced, and again once it rejoined.
    h4 = _History()
    h4.req(3, MARK, [70], 1.0, 1.1)
    h4.req(1, IS_CLEAN, [70], 3.0, 3.1, answer=1)       # fenced: allowed
    h4.req(3, MARK, [71], 9.0, 9.2)                     # node 3's first ordered reply after the heal (8.0)
    h4.req(1, IS_CLEAN, [70], 9.5, 9.6, answer=1)       # rejoined, mark re-established: violation
    h4.req(3, CLEAR, [70, 71], 12.0, 12.1)
    report = check_history(h4.records, faults=[(2.0, 3, "partition", 8.0)])
    if report.by_category() != {"is_clean": 1}:
        failures.append(f"fence/rejoin: expected exactly one [is_clean] (after the rejoin), got {report.summary()}")
    elif verbose:
        print(f"  self-test fence-and-rejoin: flagged as expected: {report.violations[0][1]}")
    if not any(c == "remote_recovering" for c, _ in relaxed.warnings):
        failures.append("relaxed: remote_recovering was not downgraded to a warning")
    # Not violations: a late (not accepted) grant, a held request answered after the window, soft errors.
    h3, faults3 = _clean_history()
    h3.req(3, GET_RESYNC_WORK, [], 4.2, 4.3, answer=(1, 7), accepted=False)
    h3.req(3, MARK, [50], 12.0, 14.5)
    h3.req(3, IS_CLEAN, [50], 10.2, 10.3, answer=0)   # within the grace period
    h3.req(1, IS_CLEAN, [60], 8.0, 8.1, error=-ulog.EIO)
    report = check_history(h3.records, gen_end={9: (7.5, "lost")}, faults=faults3, inquorate=[(3, 10.0, 14.0)])
    if report.violations:
        failures.append(f"allowed cases flagged: {report.summary()}")
    return failures


if __name__ == "__main__":
    import sys
    problems = self_test(verbose=True)
    for p in problems:
        print("FAIL", p)
    print("checker self-test:", "FAIL" if problems else "PASS")
    sys.exit(1 if problems else 0)
