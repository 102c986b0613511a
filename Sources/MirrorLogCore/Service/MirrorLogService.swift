/// The daemon's one pure entry point: every kernel request, device result, corosync event and clock
/// tick goes in here as a value, and what the shell must do comes out as ``Directive``s.
///
/// It owns the local ``LogEngine`` and the ``ClusterNode`` and routes between them by the parsed log
/// type. It decides every reply the kernel gets, including -ESRCH for a log nobody serves and the
/// refusal of a clustered constructor without corosync. Time comes in as `now` (monotonic
/// nanoseconds); the batching window, the corosync reconnect pacing and the retries corosync asks
/// for go out as timers (``Directive/wake(at:)``), in the style of swift-cluster-membership's
/// `SWIM.Instance`.
public struct MirrorLogService: Sendable {
    /// Local `core` and `disk` logs.
    public private(set) var engine = LogEngine()
    /// Clustered logs (nil until corosync was reached once: it gives this daemon its member id).
    public private(set) var cluster: ClusterNode?
    /// Where the corosync connection is.
    public private(set) var corosync: CorosyncLink = .unused
    /// How failed members are proven gone before their recovery completes (the DLM barrier unless
    /// the operator chose to run without fencing).
    public var fencingMode: FencingMode = .dlm
    /// The boot id of this node's kernel (`/proc/sys/kernel/random/boot_id`, read by the shell).
    public var bootID: UInt64 = 0
    /// At most this many cluster operations per CPG message (benchmarks; nil: unlimited).
    public var operationsPerMessage: Int?
    /// Self-clocked batching: while this many of our multicasts are on their way, requests collect
    /// for the next message. An idle node sends at once; a busy one sends fewer, larger messages.
    public var batchingWindow = 2
    /// A multicast that never comes back (corosync drops those sent outside the group) reopens the
    /// window after this long.
    public var windowReopenNanoseconds: UInt64 = 50_000_000
    /// Between two attempts to reach corosync while clustered logs wait for it.
    public var reconnectNanoseconds: UInt64 = 1_000_000_000
    /// How soon to try again what corosync answered with TRY_AGAIN (a join, a flow-controlled multicast).
    public var retryNanoseconds: UInt64 = 5_000_000
    /// How long clustered constructors wait for this node's DLM lock before they are refused (a
    /// lockspace join waits for dlm_controld, which may hang while the cluster recovers).
    public var dlmAcquireNanoseconds: UInt64 = 30_000_000_000
    /// When the pending request for this node's DLM lock is given up.
    private var dlmAcquireDeadline: UInt64?

    /// Our multicasts not delivered back yet, and when the oldest of them went out.
    private var inFlight = 0
    private var inFlightSince: UInt64 = 0
    /// Clustered constructors waiting for the outcome of a connect attempt.
    private var awaitingCorosync: [KernelRequest] = []
    /// A join corosync answered with TRY_AGAIN.
    private var joinDeferred = false
    /// Multicasts the shell holds back under flow control.
    private var backlog = 0

    /// The corosync connection as the service sees it.
    public enum CorosyncLink: Sendable, Equatable {
        /// Never needed: no clustered log so far.
        case unused
        /// A connect attempt was asked for; its outcome comes back in the same loop pass.
        case connecting
        /// Connected.
        case connected
        /// Not reachable since the last attempt at this time (or the connection was lost then).
        case down(lastAttempt: UInt64)
    }

    public init() {}

    /// Whether a log instance is served here (locally or clustered).
    public func serves(luid: UInt64) -> Bool {
        engine.logs[luid] != nil || engine.isConstructing(luid: luid) || (cluster?.serves(luid: luid) ?? false)
    }

    /// Number of log instances served, local and clustered.
    public var activeLogCount: Int {
        engine.logs.count + (cluster?.logs.values.reduce(0) { $0 + $1.instances.count } ?? 0)
    }

    // MARK: Kernel

    /// A request from the kernel.
    public mutating func handle(_ request: KernelRequest, now: UInt64) -> [Directive] {
        let luid = request.header.luid
        if engine.logs[luid] != nil || engine.isConstructing(luid: luid) { return engine.handle(request) }
        if let cluster, cluster.serves(luid: luid) { return withCluster(now: now) { $0.handleKernel(request) } }
        guard request.type == .constructor, case let .constructor(text) = request.payload else {
            return LogEngine.unknownLog(request)
        }
        // Unparsable or local: the engine answers (it refuses a bad table with the reason). The table
        // is parsed once, here.
        guard let arguments = try? ConstructorArguments.parse(text.text) else { return engine.handle(request) }
        guard arguments.logType.isClustered else { return engine.handle(request, parsed: arguments) }
        guard corosync == .connected, cluster != nil else {
            awaitingCorosync.append(Self.owned(request))
            if case .connecting = corosync { return [] }
            corosync = .connecting
            return [.connectCorosync]
        }
        return withCluster(now: now) { $0.handleKernel(request, parsed: arguments) }
    }

    /// A request that was framed correctly but could not be decoded: -EINVAL, with the reason.
    public func invalidRequest(_ header: RequestHeader, _ error: some Error) -> [Directive] {
        [.notice(Notice(.error, uuid: header.uuid, "invalid request (seq \(header.seq)): \(error); answering -EINVAL")), .reply(header, .failure(.invalidArgument))]
    }

    /// The log device of a constructor was opened (or not).
    public mutating func completeOpen(luid: UInt64, _ result: Result<DeviceAttachment, DeviceIOError>, now: UInt64) -> [Directive] {
        if engine.isConstructing(luid: luid) { return engine.completeOpen(luid: luid, result) }
        return withCluster(now: now) { $0.completeOpen(luid: luid, result) }
    }

    /// A device read finished.
    public mutating func completeRead(_ io: DeviceIO, _ result: Result<[UInt8], DeviceIOError>, now: UInt64) -> [Directive] {
        switch io.log {
        case .local: engine.completeRead(io, result)
        case .clustered: withCluster(now: now) { $0.completeRead(io, result) }
        }
    }

    /// A device write finished.
    public mutating func completeWrite(_ io: DeviceIO, _ result: Result<Void, DeviceIOError>, now: UInt64) -> [Directive] {
        switch io.log {
        case .local: engine.completeWrite(io, result)
        case .clustered: withCluster(now: now) { $0.completeWrite(io, result) }
        }
    }

    /// Everything a forced exit must still write: the dirty bitmap blocks of every local disk log.
    public func pendingDiskWrites() -> [(DeviceIO, [DiskWrite])] {
        engine.logs.values.sorted { $0.luid < $1.luid }.filter(\.hasDirtyBlocks).map {
            (DeviceIO(luid: $0.luid, log: .local(luid: $0.luid), ticket: 0), $0.pendingDiskWrites())
        }
    }

    // MARK: Corosync

    /// A connect attempt succeeded: `me` is this daemon in corosync, `quorum` what votequorum says.
    public mutating func corosyncConnected(me: MemberID, quorum: QuorumView, now: UInt64) -> [Directive] {
        corosync = .connected
        inFlight = 0
        var out: [Directive] = []
        if cluster == nil {
            var node = ClusterNode(me: me, quorum: quorum, boot: bootID, fencing: fencingMode)
            if let operationsPerMessage { node.operationsPerMessage = operationsPerMessage }
            cluster = node
            out.append(.notice(Notice(.info, uuid: nil, "connected to corosync as node \(me.nodeID) (member \(me)); quorate: \(quorum.quorate)")))
        } else {
            out.append(.notice(Notice(.info, uuid: nil, "reconnected to corosync; rejoining for \(cluster?.logs.count ?? 0) clustered log(s)")))
            out += withCluster(now: now) { $0.connectionRestored() }
            out += withCluster(now: now) { $0.quorumChanged(quorum) }
        }
        let held = awaitingCorosync
        awaitingCorosync.removeAll()
        for request in held { out += withCluster(now: now) { $0.handleKernel(request) } }
        return out
    }

    /// A connect attempt failed: held clustered constructors are refused, with the reason.
    public mutating func corosyncUnavailable(_ reason: String, now: UInt64) -> [Directive] {
        let first = !isDown
        corosync = .down(lastAttempt: now)
        var out: [Directive] = []
        let held = awaitingCorosync
        awaitingCorosync.removeAll()
        for request in held {
            out.append(.notice(Notice(.error, uuid: request.header.uuid, "constructor refused: clustered logs need corosync, and mirrorlogd cannot reach it (\(reason)); is corosync running?")))
            out.append(.reply(request.header, .failure(.invalidArgument)))
        }
        if held.isEmpty, first {
            out.append(.notice(Notice(.warning, uuid: nil, "cannot reach corosync (\(reason)); clustered logs hold their requests until it runs")))
        }
        return out
    }

    /// The connection to corosync failed (the shell closed its handles).
    public mutating func corosyncLost(_ reason: String, now: UInt64) -> [Directive] {
        corosync = .down(lastAttempt: now)
        inFlight = 0
        joinDeferred = false
        backlog = 0
        return [.notice(Notice(.error, uuid: nil, "connection to corosync lost: \(reason)"))] + withCluster(now: now) { $0.connectionLost() }
    }

    /// A message delivered in the ordering group.
    public mutating func delivered(from sender: MemberID, bytes: ArraySlice<UInt8>, now: UInt64) -> [Directive] {
        if sender == cluster?.me, inFlight > 0 {
            inFlight -= 1
            inFlightSince = inFlight > 0 ? now : 0
        }
        return withCluster(now: now) { $0.deliver(from: sender, bytes: bytes) }
    }

    /// A configuration change of the ordering group.
    public mutating func membershipChanged(_ change: MembershipChange, now: UInt64) -> [Directive] {
        withCluster(now: now) { $0.membershipChanged(change) }
    }

    /// votequorum reported a change.
    public mutating func quorumChanged(_ view: QuorumView, now: UInt64) -> [Directive] {
        withCluster(now: now) { $0.quorumChanged(view) }
    }

    /// The DLM reported on a ``Directive/dlm(_:)`` (the fencing barrier).
    public mutating func dlm(_ event: DLMEvent, now: UInt64) -> [Directive] {
        switch event {
        case .acquired, .unavailable: dlmAcquireDeadline = nil
        case .granted: break
        }
        return withCluster(now: now) { $0.dlm(event) }
    }

    /// corosync answered a join with TRY_AGAIN (`deferred`), or accepted it.
    public mutating func joinAttempted(deferred: Bool, now: UInt64) -> [Directive] {
        let was = joinDeferred
        joinDeferred = deferred
        if deferred, !was { return [.notice(Notice(.info, uuid: nil, "corosync is busy (TRY_AGAIN) joining the ordering group; trying again from the event loop"))] }
        if !deferred, was { return [.notice(Notice(.info, uuid: nil, "joined the ordering group after corosync asked to try again"))] }
        return []
    }

    /// The end of an event-loop pass (and every timer): multicast what the pass queued (requests
    /// that arrived together share one message), try again what corosync deferred, reconnect when
    /// due. `backlog` is the number of multicasts the shell holds under flow control. Ends with the
    /// next ``Directive/wake(at:)``.
    public mutating func tick(now: UInt64, backlog: Int) -> [Directive] {
        self.backlog = backlog
        var out: [Directive] = []
        if case let .down(last) = corosync, let cluster, !cluster.logs.isEmpty, now &- last >= reconnectNanoseconds {
            corosync = .connecting
            out.append(.connectCorosync)
        }
        if let deadline = dlmAcquireDeadline, now >= deadline {
            dlmAcquireDeadline = nil
            if cluster?.fencing.own == .acquiring {
                let reason = "the DLM did not grant this node's lock within \(dlmAcquireNanoseconds / 1_000_000_000) s; is dlm_controld running and quorate?"
                out += withCluster(now: now) { $0.dlm(.unavailable(reason)) }
            }
        }
        if corosync == .connected {
            if joinDeferred { out.append(.joinOrderingGroup) }
            if inFlight >= batchingWindow, now &- inFlightSince > windowReopenNanoseconds { inFlight = 0 }
            if inFlight < batchingWindow { out += withCluster(now: now) { $0.flushOutbound() } }
        }
        out.append(.wake(at: nextWake(now: now)))
        return out
    }

    // MARK: Internals

    private var isDown: Bool {
        if case .down = corosync { return true }
        return false
    }

    /// When the loop must run again at the latest.
    private func nextWake(now: UInt64) -> UInt64 {
        var wake = now + 1_000_000_000
        if corosync == .connected {
            if joinDeferred || backlog > 0 { wake = min(wake, now + retryNanoseconds) }
            if inFlight >= batchingWindow, cluster?.hasOutbound ?? false { wake = min(wake, inFlightSince + windowReopenNanoseconds + 1) }
        }
        if case let .down(last) = corosync, !(cluster?.logs.isEmpty ?? true) { wake = min(wake, last + reconnectNanoseconds) }
        if let deadline = dlmAcquireDeadline { wake = min(wake, deadline) }
        return max(wake, now)
    }

    /// Runs `body` on the node and counts the multicasts it asks for (the batching window); leaving
    /// the group closes the window, since nothing sent before comes back.
    private mutating func withCluster(now: UInt64, _ body: (inout ClusterNode) -> [Directive]) -> [Directive] {
        guard var node = cluster else { return [] }
        cluster = nil
        let out = body(&node)
        cluster = node
        for directive in out {
            switch directive {
            case .multicast:
                if inFlight == 0 { inFlightSince = now }
                inFlight += 1
            case .leaveOrderingGroup:
                inFlight = 0
            case .dlm(.acquireNodeLock):
                dlmAcquireDeadline = now + dlmAcquireNanoseconds
            default:
                break
            }
        }
        return out
    }

    /// Gives tests and the simulation the node to configure (mutation checks); nothing else may.
    public mutating func configureCluster(_ body: (inout ClusterNode) -> Void) {
        guard var node = cluster else { return }
        cluster = nil
        body(&node)
        cluster = node
    }

    /// A request that owns its uuid bytes (a received one borrows the receive buffer).
    private static func owned(_ request: KernelRequest) -> KernelRequest {
        var copy = request
        copy.header.uuidBytes = ArraySlice(Array(request.header.uuidBytes))
        return copy
    }
}
