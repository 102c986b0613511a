import MirrorLogCore

/// Several daemons (each a ``MirrorLogService``, the entry point the daemon drives) over a
/// ``SimulatedCPG``, with shared simulated log devices and a record of every reply. Tests and the
/// simulation runner drive it step by step, on a virtual clock (``now``).
///
/// It plays the daemon's shell: directives are carried out at once (disk I/O too), multicasts go to
/// the CPG, and a multicast refused with CS_ERR_TRY_AGAIN (``flowControlled``) waits in the member's
/// retry queue, in order, until ``retryMulticasts(of:)`` gets it through.
public struct SimulatedCluster: Sendable {
    public var cpg = SimulatedCPG()
    /// Live daemons.
    public private(set) var services: [MemberID: MirrorLogService] = [:]
    /// Each live daemon's cluster node (for checks and tests).
    public var nodes: [MemberID: ClusterNode] { services.compactMapValues(\.cluster) }
    /// The virtual clock, in nanoseconds (the services' `now`).
    public var now: UInt64 = 0
    /// Replies each daemon sent to its kernel, in order (kept while ``keepHistory``).
    public private(set) var replies: [MemberID: [(header: RequestHeader, reply: Reply)]] = [:]
    /// Notices each daemon logged (kept while ``keepHistory``).
    public private(set) var notices: [MemberID: [Notice]] = [:]
    /// Keep ``replies`` and ``notices`` (the simulation runner reads ``outbox`` instead).
    public var keepHistory = true
    /// Replies sent since the last ``takeOutbox()``, in order.
    public private(set) var outbox: [SentReply] = []
    /// Daemons that founded a log's state from scratch (since the last ``takeFoundings()``).
    public private(set) var foundings: [MemberID] = []
    /// Shared log devices by device spec text, as byte images.
    public var devices: [String: [UInt8]] = [:]
    /// Size of a new simulated log device.
    public var deviceSize = 1 << 20
    /// Device writes fail while true (per device).
    public var failingDevices: Set<String> = []
    /// Members whose multicasts are refused with CS_ERR_TRY_AGAIN (flow control).
    public var flowControlled: Set<MemberID> = []
    /// Multicasts refused with TRY_AGAIN and waiting to be retried, per member, in order.
    public private(set) var retryQueue: [MemberID: [(group: String, bytes: [UInt8])]] = [:]
    /// Number of multicasts refused with TRY_AGAIN so far.
    public private(set) var refusedMulticasts = 0
    /// Complete device writes only when ``completeDiskWrite(_:)`` is called (otherwise at once).
    public var asyncDisk = false
    /// Device writes issued and not completed yet (with ``asyncDisk``).
    public private(set) var diskWrites: [PendingDiskWrite] = []
    /// Which device each (member, luid) opened.
    private var opened: [MemberID: [UInt64: String]] = [:]
    public var blockSize = 512
    /// Recovery restarts the daemons asked for (suspend and resume of their kernel's device).
    public private(set) var recoveryRestarts: [(member: MemberID, uuid: String)] = []
    public var quorum = QuorumView(quorate: true, nodes: [])
    /// How the daemons prove failed members gone (the DLM barrier by default, as in the daemon).
    public var fencingMode: FencingMode = .dlm
    /// The cluster's DLM: the node locks of the fencing barrier.
    public var dlm = SimulatedDLM()
    /// Applied to every daemon's cluster node when it starts (tests use it to configure the core,
    /// e.g. mutations).
    public var configure: (@Sendable (inout ClusterNode) -> Void)?

    /// A reply a daemon sent to its kernel.
    public struct SentReply: Sendable {
        public var member: MemberID
        public var header: RequestHeader
        public var reply: Reply
    }

    /// A device write in progress.
    public struct PendingDiskWrite: Sendable {
        public var member: MemberID
        public var device: String
        public var writes: [DiskWrite]
        public var io: DeviceIO
    }

    public init() {}

    /// Completes device write `index` of ``diskWrites``: the blocks reach the device (unless it is
    /// failing) and the daemon hears the result.
    public mutating func completeDiskWrite(_ index: Int) {
        let pending = diskWrites.remove(at: index)
        guard services[pending.member] != nil else { return }
        let result = write(pending.writes, to: pending.device)
        let out = services[pending.member]!.completeWrite(pending.io, result, now: now)
        run(out, on: pending.member)
    }

    private mutating func write(_ writes: [DiskWrite], to name: String) -> Result<Void, DeviceIOError> {
        guard devices[name] != nil, !failingDevices.contains(name) else {
            return .failure(DeviceIOError(errno: 5, operation: "write"))
        }
        for write in writes {
            let start = Int(write.offset)
            devices[name]!.replaceSubrange(start ..< start + write.bytes.count, with: write.bytes)
        }
        return .success(())
    }

    /// Starts a daemon, with the quorum view it reads at start (the cluster's by default).
    /// `boot` names the node's kernel (its power-on count in the simulation).
    public mutating func start(_ member: MemberID, quorum view: QuorumView? = nil, boot: UInt64 = 1) {
        var service = MirrorLogService()
        service.fencingMode = fencingMode
        service.bootID = boot
        _ = service.corosyncConnected(me: member, quorum: view ?? quorum, now: now)
        if let configure { service.configureCluster(configure) }
        services[member] = service
    }

    /// Kills a daemon and removes it from the ordering group (reason `nodeDown` for a node failure).
    /// Its undelivered messages are lost, unless `undeliveredReachSurvivors`: then every survivor
    /// gets them before the configuration change (virtual synchrony allows all or none).
    public mutating func crash(_ member: MemberID, reason: LeaveReason = .processDown, undeliveredReachSurvivors: Bool = false) {
        services.removeValue(forKey: member)
        dlm.processDied(member)
        opened.removeValue(forKey: member)
        diskWrites.removeAll { $0.member == member }
        retryQueue.removeValue(forKey: member)
        flowControlled.remove(member)
        if !undeliveredReachSurvivors { cpg.dropUndelivered(from: member) }
        cpg.remove(member, reason: reason)
    }

    /// A kernel request from `member`'s kernel; directives are carried out at once (disk I/O too),
    /// multicasts are queued in the CPG.
    public mutating func send(_ request: KernelRequest, on member: MemberID) {
        guard services[member] != nil else { return }
        let out = services[member]!.handle(request, now: now)
        run(out, on: member)
    }

    /// Multicasts every daemon's queued operations.
    public mutating func flushOutbound() {
        for member in services.keys.sorted() { flushOutbound(of: member) }
    }

    /// The end of `member`'s event-loop pass: its retry queue first, then the service's tick, which
    /// multicasts the queued operations when its batching window allows.
    public mutating func flushOutbound(of member: MemberID) {
        guard services[member] != nil else { return }
        retryMulticasts(of: member)
        let out = services[member]!.tick(now: now, backlog: retryQueue[member]?.count ?? 0)
        run(out, on: member)
    }

    /// Whether `member` has operations or refused multicasts waiting.
    public func hasOutbound(_ member: MemberID) -> Bool {
        (services[member]?.cluster?.hasOutbound ?? false) || !(retryQueue[member]?.isEmpty ?? true)
    }

    /// Retries `member`'s refused multicasts, in order, until one is refused again.
    public mutating func retryMulticasts(of member: MemberID) {
        guard var queue = retryQueue[member], !queue.isEmpty else { return }
        while !queue.isEmpty, !flowControlled.contains(member) {
            let next = queue.removeFirst()
            cpg.multicast(next.bytes, group: next.group, from: member)
        }
        retryQueue[member] = queue
    }

    /// `node` was fenced (or rebooted): the DLM purges its locks and grants the requests on them.
    public mutating func purgeLocks(ofNode node: UInt32) {
        dlm.purge(node)
    }

    /// Delivers DLM event `index` of ``SimulatedDLM/events`` to its daemon.
    public mutating func deliverDLMEvent(_ index: Int = 0) {
        let (member, event) = dlm.events.remove(at: index)
        guard services[member] != nil else { return }
        let out = services[member]!.dlm(event, now: now)
        run(out, on: member)
    }

    /// Delivers the next event of the total order (of the first component that has one), or else
    /// the next DLM event. Returns false when nothing is queued.
    @discardableResult
    public mutating func step() -> Bool {
        if !dlm.events.isEmpty {
            deliverDLMEvent()
            return true
        }
        for index in cpg.components.indices where cpg.canDeliver(index) {
            deliver(component: index)
            return true
        }
        return false
    }

    /// Delivers the next event of component `index`; returns what each member received.
    @discardableResult
    public mutating func deliver(component index: Int) -> [SimulatedCPG.Delivery] {
        let deliveries = cpg.deliverNext(in: index)
        for delivery in deliveries where services[delivery.member] != nil {
            let member = delivery.member
            let out: [Directive]
            switch delivery.event {
            case let .message(group, from, bytes):
                guard group == ClusterNode.orderingGroup else { continue }
                out = services[member]!.delivered(from: from, bytes: bytes[...], now: now)
            case let .change(group, change):
                guard group == ClusterNode.orderingGroup else { continue }
                out = services[member]!.membershipChanged(change, now: now)
            }
            run(out, on: member)
        }
        return deliveries
    }

    /// Flushes and delivers until nothing is left (bounded).
    public mutating func settle(maxSteps: Int = 100_000) {
        for _ in 0 ..< maxSteps {
            flushOutbound()
            if !step() { return }
        }
    }

    /// Changes quorum on every live daemon (and the view new daemons start with), or on `members`.
    public mutating func setQuorum(_ view: QuorumView, on members: [MemberID]? = nil) {
        if members == nil { quorum = view }
        for member in members ?? services.keys.sorted() where services[member] != nil {
            let out = services[member]!.quorumChanged(view, now: now)
            run(out, on: member)
        }
    }

    /// The replies `member` sent, for tests.
    public func replies(of member: MemberID) -> [(header: RequestHeader, reply: Reply)] { replies[member] ?? [] }

    /// The last reply `member` sent for seq `seq`.
    public func reply(of member: MemberID, seq: UInt32) -> Reply? {
        replies[member]?.last { $0.header.seq == seq }?.reply
    }

    /// The daemons that founded a state since the last call.
    public mutating func takeFoundings() -> [MemberID] {
        defer { foundings.removeAll() }
        return foundings
    }

    /// The replies sent since the last call.
    public mutating func takeOutbox() -> [SentReply] {
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    mutating func run(_ directives: [Directive], on member: MemberID) {
        var work = directives
        var index = 0
        while index < work.count {
            let directive = work[index]
            index += 1
            guard services[member] != nil else { return }
            switch directive {
            case let .reply(header, reply):
                outbox.append(SentReply(member: member, header: header, reply: reply))
                if keepHistory { replies[member, default: []].append((header, reply)) }
            case .joinOrderingGroup:
                cpg.join(member, group: ClusterNode.orderingGroup)
            case .leaveOrderingGroup:
                let group = ClusterNode.orderingGroup
                // Refused multicasts belong to the membership we leave (the core re-sends what is
                // still unanswered after it joins again).
                retryQueue[member]?.removeAll { $0.group == group }
                cpg.leave(member, group: group, reason: .left)
            case let .multicast(bytes):
                let group = ClusterNode.orderingGroup
                if flowControlled.contains(member) || !(retryQueue[member]?.isEmpty ?? true) {
                    // CS_ERR_TRY_AGAIN: the shell keeps it, in order, and tries again later.
                    refusedMulticasts += 1
                    retryQueue[member, default: []].append((group, bytes))
                } else {
                    cpg.multicast(bytes, group: group, from: member)
                }
            case let .openDevice(luid, spec):
                let name = spec.description
                if devices[name] == nil { devices[name] = [UInt8](repeating: 0, count: deviceSize) }
                opened[member, default: [:]][luid] = name
                let attachment = DeviceAttachment(major: 7, minor: 0, blockSize: blockSize, sizeBytes: UInt64(devices[name]!.count))
                work += services[member]!.completeOpen(luid: luid, .success(attachment), now: now)
            case let .closeDevice(luid):
                opened[member]?.removeValue(forKey: luid)
            case let .readDevice(io, byteCount):
                let name = opened[member]?[io.luid] ?? ""
                let image = devices[name].map { Array($0.prefix(byteCount)) }
                let result: Result<[UInt8], DeviceIOError> = image.map { .success($0) } ?? .failure(DeviceIOError(errno: 19, operation: "read"))
                work += services[member]!.completeRead(io, result, now: now)
            case let .writeDevice(io, writes):
                let name = opened[member]?[io.luid] ?? ""
                if asyncDisk {
                    diskWrites.append(PendingDiskWrite(member: member, device: name, writes: writes, io: io))
                } else {
                    work += services[member]!.completeWrite(io, write(writes, to: name), now: now)
                }
            case let .restartRecovery(uuid):
                recoveryRestarts.append((member, uuid))
            case .dlm(.acquireNodeLock):
                dlm.acquire(member)
            case let .dlm(.watchNode(node)):
                dlm.watch(node, by: member)
            case let .dlm(.releaseNode(node)):
                dlm.release(node, by: member)
            case .connectCorosync, .wake:
                // The simulated daemons stay connected; the runner decides when each one's loop runs.
                break
            case let .notice(notice):
                if notice.event == .foundedState { foundings.append(member) }
                if keepHistory { notices[member, default: []].append(notice) }
            }
        }
    }
}
