import MirrorLogCore

/// dm-raid1 with a clustered `userspace` log on one node, as its daemon sees it (REFERENCE.md
/// section 1): one worker (kmirrord) that issues one request at a time, plus one status request
/// (`dmsetup status`, the map path's IN_SYNC) that can be in flight beside it.
///
/// - A write to region r: IS_REMOTE_RECOVERING unless r is below the cached `in_sync_hint` (asked at
///   most once per 250 ms; in between, "recovering"); a recovering region is requeued for 200 ms;
///   then the mark is queued, and the next flush sends CLEAR_REGION and MARK_REGION groups of up to
///   32 regions and FLUSH (with `integrated_flush`, the marks ride in FLUSH). The write is issued
///   when the flush succeeded; when it completes, the region's clear is queued.
/// - Recovery: GET_RESYNC_WORK, one region at a time; the region is quiesced locally (no local write
///   runs or starts), copied, then SET_REGION_SYNC(r, 1), or (r, 0) after a leg failure.
/// - Suspend: recovery and I/O drain, queued clears are flushed, then PRESUSPEND and POSTSUSPEND;
///   RESUME resets the hint. A clean shutdown adds DTR.
/// - No answer within 15 s: the request is re-sent with a new seq (a late answer to the old seq is
///   dropped). Daemon gone: once a daemon runs again, CTR (NUL-terminated, the saved string), RESUME,
///   then the requests that were lost; the hint is kept.
public struct SimulatedKernel: Sendable {
    public enum Phase: String, Sendable, Equatable {
        /// CTR not answered yet.
        case constructing
        /// CTR answered; RESUME not answered yet.
        case resuming
        case running
        /// Draining before PRESUSPEND/POSTSUSPEND.
        case suspending
        case suspended
        /// Destroyed (DTR answered): the device is gone.
        case destroyed
    }

    public enum Channel: Sendable, Equatable { case worker, status }

    /// A request sent and not answered.
    public struct Request: Sendable {
        public var type: RequestType
        public var payload: RequestPayload
        public var channel: Channel
        /// The daemon it was sent to.
        public var daemon: MemberID
        public var sentAt: UInt64
        /// Timed out and re-sent with a new seq: an answer is still allowed (once) and dropped.
        public var abandoned = false
    }

    /// A region being resynced by this node.
    public struct Resync: Sendable, Equatable {
        public var region: UInt64
        /// Copy finished at this time (nil while waiting for local writes to the region to finish).
        public var doneAt: UInt64?
        /// The copy finished (SET_REGION_SYNC is due).
        public var copied = false
        /// A leg failed during the copy: SET_REGION_SYNC(r, 0).
        public var legFailed = false
        /// SET_REGION_SYNC was sent.
        public var reported = false
    }

    public let node: UInt32
    public let luid: UInt64
    public let uuid: String
    public let regionCount: UInt64
    let uuidBytes: [UInt8]
    let table: String
    let integratedFlush: Bool

    public private(set) var phase: Phase = .constructing
    /// The daemon requests go to (nil while none runs on the node).
    public private(set) var daemon: MemberID?
    /// Requests in flight, by seq.
    public private(set) var inFlight: [UInt32: Request] = [:]
    private var workerSeq: UInt32?
    private var statusSeq: UInt32?
    private var seq: UInt32
    /// The first CTR of this kernel device was not sent yet / a reconnect is due.
    private var ctrPending = true
    private var reconnecting = false
    /// Worker requests lost with a daemon, re-sent after the reconnect.
    private var backlog: [(RequestType, RequestPayload)] = []

    // Writes
    /// Bios waiting for their region to be checked and marked.
    private var waiting: [UInt64] = []
    private var delayed: [(region: UInt64, until: UInt64)] = []
    /// Regions checked and waiting for the next flush to mark them.
    private var toMark: [UInt64] = []
    /// The flush in progress: the regions it marks, and its remaining requests.
    private var flushRegions: [UInt64] = []
    private var flushSteps: [(RequestType, RequestPayload)] = []
    private var flushFailed = false
    /// A log flush failed (`ms->log_failure` with `handle_errors`): writes are held until the next resume.
    public private(set) var logFailure = false
    /// Bios held by a log failure.
    private var held: [UInt64] = []
    /// Bios completed by a suspend, submitted again after the resume.
    private var requeued: [UInt64] = []
    /// Regions whose mark the log acknowledged and whose clear was not sent (DM_RH_DIRTY).
    public private(set) var logMarked: Set<UInt64> = []
    /// Regions the region hash holds as DM_RH_NOSYNC: written to the primary leg only, unmarked.
    private var nosync: Set<UInt64> = []
    /// Bios whose region passed the remote-recovery check.
    private var checked: [UInt64] = []
    private var pendingInSync: UInt64?
    /// Regions to report out of sync after a leg write failure (SET_REGION_SYNC(r, 0)).
    private var legFailures: [UInt64] = []
    /// Writes in flight per region.
    public private(set) var writing: [UInt64: Int] = [:]
    private var writeEnds: [(region: UInt64, at: UInt64, allLegs: Bool)] = []
    private var toClear: Set<UInt64> = []
    /// The kernel's cached in_sync_hint: below it, "not recovering" without asking.
    public private(set) var inSyncHint: UInt64 = 0
    private var lastRemoteAsk: UInt64?
    private var pendingCheck: UInt64?

    // Recovery
    public private(set) var resync: Resync?
    private var nextResyncAsk: UInt64 = 0
    /// The last GET_RESYNC_WORK found nothing to do.
    private var noResyncWork = false
    private var nextStatus: UInt64 = 0
    /// GET_SYNC_COUNT answered region_count since the last resume.
    public private(set) var sawInSync = false

    // Suspend and shutdown
    private var suspendThenDestroy = false
    public private(set) var suspendWanted = false
    /// Stop starting writes (the simulation's end phase).
    public var quiet = false
    /// Fail the next resync (SET_REGION_SYNC(r, 0)).
    public var failNextResync = false
    /// The next completed marked write fails on a leg (SET_REGION_SYNC(r, 0)).
    public var failNextWrite = false

    /// The last seq used (a new device of the node continues from it: one counter per kernel).
    public var lastSeq: UInt32 { seq }

    /// Number of write bios completed (for statistics).
    public private(set) var writesDone = 0

    public init(node: UInt32, luid: UInt64, uuid: String, table: String, regionCount: UInt64, integratedFlush: Bool, seqBase: UInt32) {
        self.node = node
        self.luid = luid
        self.uuid = uuid
        self.uuidBytes = Array(uuid.utf8)
        self.table = table
        self.regionCount = regionCount
        self.integratedFlush = integratedFlush
        self.seq = seqBase
    }

    // MARK: Daemon lifecycle

    /// The node's daemon died: what it did not answer is lost; the worker re-sends after reconnecting.
    public mutating func daemonLost() {
        daemon = nil
        if let s = workerSeq, let request = inFlight[s], !request.abandoned, request.type != .constructor, request.type != .resume || phase != .resuming {
            backlog.insert((request.type, request.payload), at: 0)
        }
        workerSeq = nil
        statusSeq = nil
        inFlight.removeAll()
        if phase == .constructing {
            ctrPending = true
        } else if phase != .destroyed, !ctrPending {
            reconnecting = true
            ctrPending = true
        }
    }

    /// A daemon runs on the node (again).
    public mutating func daemonStarted(_ member: MemberID) {
        daemon = member
    }

    /// The device is being shut down cleanly (suspend, then DTR), or just suspended and resumed.
    public mutating func requestSuspend(destroy: Bool) {
        guard phase == .running else { return }
        phase = .suspending
        suspendWanted = true
        suspendThenDestroy = destroy
    }

    /// A suspended device is resumed.
    public mutating func requestResume() {
        guard phase == .suspended else { return }
        phase = .resuming
    }

    /// Whether the worker has nothing in progress (no request, write, resync, or queued work).
    public var isIdle: Bool {
        inFlight.isEmpty && waiting.isEmpty && delayed.isEmpty && toMark.isEmpty && flushSteps.isEmpty && checked.isEmpty && held.isEmpty
            && writing.isEmpty && toClear.isEmpty && resync == nil && backlog.isEmpty && legFailures.isEmpty && !ctrPending
    }

    /// Regions with a marked write in flight (the log was told before the write was issued).
    public var markedWrites: [UInt64] {
        writing.keys.filter { logMarked.contains($0) }.sorted()
    }

    /// Regions the kernel holds dirty or is marking (their flush has not returned).
    public var dirtyRegions: Set<UInt64> { logMarked.union(flushRegions) }

    /// The region this node is copying, if a copy runs.
    public var copying: UInt64? {
        guard let resync, resync.doneAt != nil, !resync.copied else { return nil }
        return resync.region
    }

    /// The region this node holds as resync work (from the answer until SET_REGION_SYNC is sent).
    public var resyncRegion: UInt64? { resync.flatMap { $0.reported ? nil : $0.region } }

    // MARK: Time and work

    /// Advances to `now`: completes writes and copies, re-sends timed-out requests, generates I/O
    /// (`writeChance` per mille), and returns the requests to send to the daemon.
    public mutating func tick(now: UInt64, rng: inout SimRandom, writeChance: Int, burst: Bool) -> [KernelRequest] {
        completeWrites(now: now)
        if var r = resync, let done = r.doneAt, !r.copied, done <= now {
            r.copied = true
            if failNextResync {
                r.legFailed = true
                failNextResync = false
            }
            resync = r
        }
        if var r = resync, r.doneAt == nil, !locallyPending(r.region) {
            r.doneAt = now + UInt64(rng.int(5 ... 80))
            resync = r
        }
        var i = 0
        while i < delayed.count {
            if delayed[i].until <= now { waiting.append(delayed.remove(at: i).region) } else { i += 1 }
        }
        if phase == .running, !quiet, !suspendWanted, rng.chance(writeChance) {
            let count = burst ? rng.int(4 ... 24) : rng.int(1 ... 3)
            let hot = UInt64(rng.below(Int(regionCount)))
            for _ in 0 ..< count {
                let region = rng.chance(500) ? (hot + UInt64(rng.below(4))) % regionCount : UInt64(rng.below(Int(regionCount)))
                waiting.append(region)
            }
        }
        guard let daemon else { return [] }
        var out: [KernelRequest] = []
        // Timeouts: re-send with a new seq.
        for s in inFlight.keys.sorted() {
            let request = inFlight[s]!
            guard !request.abandoned, now >= request.sentAt + 15_000, request.daemon == daemon else { continue }
            inFlight[s]!.abandoned = true
            out.append(send(request.type, request.payload, channel: request.channel, now: now))
        }
        if workerSeq == nil, let request = nextWorkerRequest(now: now, rng: &rng) {
            out.append(send(request.0, request.1, channel: .worker, now: now))
        }
        if statusSeq == nil, phase == .running, !suspendWanted, now >= nextStatus {
            // Once quiet (the simulation's end), only an occasional sync count.
            nextStatus = now + UInt64(quiet ? rng.int(1000 ... 3000) : rng.int(100 ... 1500))
            let region = UInt64(rng.below(Int(regionCount)))
            let request: (RequestType, RequestPayload)
            switch quiet ? 0 : rng.below(10) {
            case 0 ..< 4: request = (.getSyncCount, .none)
            case 4 ..< 6: request = (.isClean, .region(region))
            case 6 ..< 9: request = (.inSync, .region(region))
            default: request = (.statusInfo, .none)
            }
            out.append(send(request.0, request.1, channel: .status, now: now))
        }
        return out
    }

    private mutating func completeWrites(now: UInt64) {
        var i = 0
        while i < writeEnds.count {
            guard writeEnds[i].at <= now else {
                i += 1
                continue
            }
            let end = writeEnds.remove(at: i)
            writesDone += 1
            if end.allLegs, failNextWrite {
                failNextWrite = false
                legFailures.append(end.region)
            }
            let left = writing[end.region]! - 1
            if left == 0 {
                writing.removeValue(forKey: end.region)
                if logMarked.contains(end.region) { toClear.insert(end.region) }
            } else {
                writing[end.region] = left
            }
        }
    }

    private mutating func nextWorkerRequest(now: UInt64, rng: inout SimRandom) -> (RequestType, RequestPayload)? {
        if ctrPending {
            ctrPending = false
            phase = phase == .destroyed ? .destroyed : (reconnecting ? phase : .constructing)
            return (.constructor, .constructor(ConstructorString(text: table, isNULTerminated: reconnecting)))
        }
        if reconnecting {
            reconnecting = false
            return (.resume, .none)
        }
        if !backlog.isEmpty { return backlog.removeFirst() }
        switch phase {
        case .constructing, .destroyed, .suspended:
            return nil
        case .resuming:
            return (.resume, .none)
        case .running, .suspending:
            break
        }
        // A flush in progress goes on.
        if !flushSteps.isEmpty { return flushSteps.removeFirst() }
        // Recovery: report a finished copy.
        if let r = resync, r.copied, !r.reported {
            resync!.reported = true
            return (.setRegionSync, .regionSync(region: r.region, inSync: !r.legFailed))
        }
        // A leg write failed: the region is out of sync.
        if !legFailures.isEmpty {
            let region = legFailures.removeFirst()
            nosync.insert(region)
            // dm_rh_mark_nosync: a region held for recovery while its writes drain (the failed
            // write is one of them) ends its recovery with it (complete_resync_work(reg, 0)); no
            // copy follows.
            if let r = resync, r.region == region, !r.copied {
                resync = Resync(region: region, doneAt: nil, copied: true, legFailed: true, reported: true)
            }
            return (.setRegionSync, .regionSync(region: region, inSync: false))
        }
        // Writes: every bio is checked for remote recovery, then placed by its region's state.
        while !suspendWanted {
            if let index = checked.firstIndex(where: { $0 != resync?.region }) {
                let region = checked.remove(at: index)
                if let request = place(region, now: now, rng: &rng) { return request }
                continue
            }
            guard let region = takeWaiting() else { break }
            if region >= inSyncHint {
                if let last = lastRemoteAsk, now < last + 250 {
                    delayed.append((region, now + 200))
                    continue
                }
                lastRemoteAsk = now
                pendingCheck = region
                return (.isRemoteRecovering, .region(region))
            }
            checked.append(region)
        }
        if suspendWanted {
            // Drain: bios not issued yet, and those held by a log failure, are completed for dm to
            // requeue after the resume (as new bios); their regions are no longer written.
            requeued += waiting + delayed.map(\.region) + checked + held
            waiting.removeAll()
            delayed.removeAll()
            checked.removeAll()
            held.removeAll()
            for region in logMarked.sorted() where writing[region] == nil && !flushRegions.contains(region) { toClear.insert(region) }
        }
        if !toClear.isEmpty || !toMark.isEmpty {
            return startFlush()
        }
        if suspendWanted {
            if resync != nil || !writing.isEmpty || statusSeq != nil { return nil }
            suspendWanted = false
            return (.presuspend, .none)
        }
        if phase == .running, resync == nil, now >= nextResyncAsk {
            nextResyncAsk = now + UInt64(quiet && noResyncWork ? rng.int(1000 ... 3000) : rng.int(20 ... 300))
            return (.getResyncWork, .none)
        }
        return nil
    }

    /// Whether a local write to `region` runs or waits for its mark (recovery waits for them).
    private func locallyPending(_ region: UInt64) -> Bool {
        // A write that failed on a leg stays pending until its SET_REGION_SYNC(r, 0) went out
        // (dm-raid1 holds the bio on its failures list, and the region's pending count with it).
        writing[region] != nil || toMark.contains(region) || flushRegions.contains(region) || pendingInSync == region
            || legFailures.contains(region)
    }

    /// A bio whose region passed the remote check: written at once if the region is DIRTY (marked)
    /// or NOSYNC (primary leg only, unmarked); joins the next flush if its mark is queued; otherwise
    /// the region's state is asked with IN_SYNC.
    private mutating func place(_ region: UInt64, now: UInt64, rng: inout SimRandom) -> (RequestType, RequestPayload)? {
        if logFailure {
            held.append(region)
            return nil
        }
        if logMarked.contains(region) {
            issueWrite(region, now: now, rng: &rng, allLegs: true)
            return nil
        }
        if nosync.contains(region) {
            issueWrite(region, now: now, rng: &rng, allLegs: false)
            return nil
        }
        if toMark.contains(region) || flushRegions.contains(region) {
            toMark.append(region)
            return nil
        }
        pendingInSync = region
        return (.inSync, .region(region))
    }

    private mutating func takeWaiting() -> UInt64? {
        // A region this node resyncs is quiesced: its bios wait.
        guard let index = waiting.firstIndex(where: { $0 != resync?.region }) else { return nil }
        return waiting.remove(at: index)
    }

    private mutating func startFlush() -> (RequestType, RequestPayload)? {
        var steps: [(RequestType, RequestPayload)] = []
        let clears = toClear.sorted()
        for region in clears { logMarked.remove(region) }
        toClear.removeAll()
        for start in stride(from: 0, to: clears.count, by: 32) {
            steps.append((.clearRegion, .regions(RegionList(Array(clears[start ..< min(clears.count, start + 32)])))))
        }
        var marks: [UInt64] = []
        for region in toMark where !marks.contains(region) { marks.append(region) }
        flushRegions = toMark
        toMark.removeAll()
        flushFailed = false
        if integratedFlush {
            for start in stride(from: 0, to: marks.count, by: 32) {
                steps.append((.flush, .regions(RegionList(Array(marks[start ..< min(marks.count, start + 32)])))))
            }
            if marks.isEmpty { steps.append((.flush, .none)) }
        } else {
            for start in stride(from: 0, to: marks.count, by: 32) {
                steps.append((.markRegion, .regions(RegionList(Array(marks[start ..< min(marks.count, start + 32)])))))
            }
            steps.append((.flush, .none))
        }
        flushSteps = steps
        return flushSteps.removeFirst()
    }

    private mutating func issueWrite(_ region: UInt64, now: UInt64, rng: inout SimRandom, allLegs: Bool) {
        // A DIRTY region written again is taken off the clean list: its clear is not sent.
        toClear.remove(region)
        writing[region, default: 0] += 1
        writeEnds.append((region, now + UInt64(rng.int(1 ... 40)), allLegs))
    }

    private mutating func send(_ type: RequestType, _ payload: RequestPayload, channel: Channel, now: UInt64) -> KernelRequest {
        seq &+= 1
        let header = RequestHeader(luid: luid, uuidBytes: uuidBytes[...], version: 3, seq: seq, rawRequestType: type.rawValue)
        inFlight[seq] = Request(type: type, payload: payload, channel: channel, daemon: daemon!, sentAt: now)
        switch channel {
        case .worker: workerSeq = seq
        case .status: statusSeq = seq
        }
        return KernelRequest(header: header, type: type, payload: payload)
    }

    // MARK: Replies

    /// The daemon's answer to `seq`. Returns the request it answers (nil: no such request in flight).
    public mutating func receive(seq s: UInt32, _ reply: Reply, now: UInt64, rng: inout SimRandom) -> Request? {
        guard let request = inFlight.removeValue(forKey: s) else { return nil }
        if request.abandoned { return request }
        switch request.channel {
        case .worker: workerSeq = nil
        case .status: statusSeq = nil
        }
        let ok = reply.error == 0
        switch request.type {
        case .constructor:
            if ok, phase == .constructing { phase = .resuming }
            if !ok { ctrPending = true }
        case .resume:
            if ok {
                if phase == .resuming || phase == .suspended {
                    // A real resume (not the reconnect's) resets the hint and the region hash.
                    inSyncHint = 0
                    lastRemoteAsk = nil
                    sawInSync = false
                    nosync.removeAll()
                    // The log works again: bios completed by the suspend come back.
                    logFailure = false
                    waiting += held + requeued
                    held.removeAll()
                    requeued.removeAll()
                }
                if phase == .resuming { phase = .running }
            } else if phase == .resuming {
                // Answered with an error: try again later.
            } else {
                reconnecting = true
            }
        case .isRemoteRecovering:
            guard let region = pendingCheck else { break }
            pendingCheck = nil
            if ok, case let .remoteRecovering(recovering, hint) = reply.payload {
                inSyncHint = hint
                if recovering {
                    delayed.append((region, now + 200))
                } else {
                    checked.append(region)
                }
            } else {
                delayed.append((region, now + 200))
            }
        case .inSync:
            guard request.channel == .worker, let region = pendingInSync else { break }
            pendingInSync = nil
            if ok, case .flag(true) = reply.payload {
                toMark.append(region)
            } else {
                // Errors read as "not in sync" (REFERENCE.md section 1).
                nosync.insert(region)
                issueWrite(region, now: now, rng: &rng, allLegs: false)
            }
        case .clearRegion, .markRegion:
            if !ok { flushFailed = true }
        case .flush:
            if !ok { flushFailed = true }
            if flushSteps.isEmpty {
                let regions = flushRegions
                flushRegions = []
                if flushFailed {
                    // log_failure: the batch's bios (and every later write) are held until a resume;
                    // their regions stay dirty.
                    logFailure = true
                    for region in regions { logMarked.insert(region) }
                    held += regions
                } else {
                    for region in regions {
                        logMarked.insert(region)
                        issueWrite(region, now: now, rng: &rng, allLegs: true)
                    }
                }
            }
        case .getResyncWork:
            noResyncWork = ok && reply.payload == .resyncWork(nil)
            if ok, case let .resyncWork(region?) = reply.payload, region < regionCount, resync == nil {
                resync = Resync(region: region, doneAt: locallyPending(region) ? nil : now + UInt64(rng.int(5 ... 80)))
            }
        case .setRegionSync:
            if let r = resync, r.copied, case let .regionSync(region, inSync) = request.payload, r.region == region {
                resync = nil
                if inSync && ok { nosync.remove(region) }
            }
        case .getSyncCount:
            if ok, case let .count(count) = reply.payload, count == regionCount {
                inSyncHint = regionCount
                sawInSync = true
            }
        case .presuspend:
            return requestAfterPresuspend(request)
        case .postsuspend:
            if suspendThenDestroy {
                backlog.append((.destructor, .none))
            } else {
                phase = .suspended
            }
        case .destructor:
            phase = .destroyed
        default:
            break
        }
        return request
    }

    private mutating func requestAfterPresuspend(_ request: Request) -> Request {
        backlog.insert((.postsuspend, .none), at: 0)
        // Recovery restarts after the resume.
        resync = nil
        return request
    }
}
