/// Every clustered log of this daemon: routes kernel requests, deliveries, configuration changes,
/// quorum changes and disk results to the right ``ClusterLog`` and returns what the shell must
/// do. Pure, like ``LogEngine``: values in, directives out.
///
/// All daemons share one CPG group, ``orderingGroup``, so that every clustered log's operations are
/// in one agreed order and the requests of many logs share one message. A log's membership is
/// ordered within it: a daemon attaches to a log (its constructor) and detaches (its last
/// destructor) with operations; a daemon that leaves the CPG group leaves every log it served, with
/// corosync's reason. A daemon that joins first collects every other daemon's census of the logs
/// it serves, so that its own attach finds the log's members.
public struct ClusterNode: Sendable {
    /// The CPG group every daemon joins.
    public static let orderingGroup = "mirrorlogd"

    /// This daemon: corosync's node id and our pid.
    public let me: MemberID
    /// The boot id of this node's kernel (a restarted daemon on a rebooted node serves a new kernel).
    public let boot: UInt64
    /// How failed members are proven gone before their recovery completes, and the DLM barrier's state.
    public private(set) var fencing: FencingBarrier
    /// The boot id of every daemon in the ordering group, from its attach or census.
    public private(set) var boots: [MemberID: UInt64] = [:]
    /// Clustered constructors waiting for this node's DLM lock.
    private var awaitingLock: [KernelRequest] = []
    /// Clustered logs this daemon serves, by uuid bytes.
    public private(set) var logs: [[UInt8]: ClusterLog] = [:]
    /// Whether the CPG connection is up (the ordering group can be joined).
    public private(set) var connected = true
    public private(set) var quorum: QuorumView
    /// A deliberately broken rule, for the simulation's mutation tests only (nil in every daemon).
    var mutation: ClusterMutation?
    /// At most this many operations per CPG message (1 gives one request per message: the
    /// benchmark's baseline). Unlimited by default.
    public var operationsPerMessage = Int.max

    private var logOfLUID: [UInt64: [UInt8]] = [:]
    private var pendingConstructors: [UInt64: PendingConstructor] = [:]
    /// Numbers the log instances this node creates; a log's device tickets start at its number
    /// shifted up by 32, so a ticket of a destroyed instance never names one of its successor's.
    private var instanceSerial: UInt64 = 0

    /// Where this daemon is with the ordering group.
    public enum OrderingStatus: String, Sendable, Equatable {
        /// Not a member (no clustered log yet, or the connection was lost).
        case idle
        /// Join asked for.
        case joining
        /// Member; waiting for the other daemons' census before attaching.
        case census
        /// Member, census complete: logs can attach.
        case ready
    }

    public private(set) var orderingStatus: OrderingStatus = .idle
    /// Members of the ordering group.
    public private(set) var orderingMembers: [MemberID] = []
    /// Which daemons serve which log (every log, not only ours), from the ordered stream.
    public private(set) var attachments: [[UInt8]: Set<MemberID>] = [:]
    private var censusPending: Set<MemberID> = []
    private var censusDue = false
    /// Logs we stopped serving whose detach still has to be multicast.
    private var detaches: [[UInt8]] = []
    /// Logs destroyed while device actions of ours were in flight: their detach waits for those to
    /// finish, or the next writer's image could be overwritten by an older one of ours (found by the
    /// simulation with asynchronous device writes, seed 49).
    private var draining: [[UInt8]: Set<UInt64>] = [:]
    /// Logs whose destroyed instance's detach is not delivered yet: an attach of ours until then is
    /// the old instance's, not the new one's join (found by the simulation).
    private var oldInstances: Set<[UInt8]> = []
    /// Members that spoke a protocol we do not; reported once each.
    private var refusedMembers: Set<MemberID> = []

    private struct PendingConstructor: Sendable {
        var header: RequestHeader
        var arguments: ConstructorArguments
        var stateLost: Bool
    }

    public init(me: MemberID, quorum: QuorumView, boot: UInt64 = 0, fencing: FencingMode = .dlm) {
        self.me = me
        self.quorum = quorum
        self.boot = boot
        self.fencing = FencingBarrier(mode: fencing)
        boots[me] = boot
    }

    /// Whether log instance `luid` is a clustered one of this node (or its constructor is under way).
    public func serves(luid: UInt64) -> Bool {
        logOfLUID[luid] != nil || pendingConstructors[luid] != nil || awaitingLock.contains { $0.header.luid == luid }
    }

    // MARK: Kernel

    /// A request from the kernel for a clustered log.
    /// `parsed` is a constructor's table, when the caller parsed it already.
    public mutating func handleKernel(_ request: KernelRequest, parsed: ConstructorArguments? = nil) -> [Directive] {
        let luid = request.header.luid
        switch request.type {
        case .constructor:
            return construct(request, parsed: parsed)
        case .destructor:
            return destroy(request)
        default:
            guard let name = logOfLUID[luid] else { return LogEngine.unknownLog(request) }
            return logs[name]?.handleKernel(request) ?? LogEngine.unknownLog(request)
        }
    }

    /// The device of a `clustered-disk` constructor was opened (or not).
    public mutating func completeOpen(luid: UInt64, _ result: Result<DeviceAttachment, DeviceIOError>) -> [Directive] {
        guard let pending = pendingConstructors.removeValue(forKey: luid) else { return [] }
        switch result {
        case let .failure(error):
            return [.reply(pending.header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: pending.header.uuid, "constructor refused: cannot use log device \(pending.arguments.logDevice?.description ?? "?"): \(error)"))]
        case let .success(attachment):
            let format = DiskLogFormat(regionCount: pending.arguments.regionCount, blockSize: attachment.blockSize)
            guard UInt64(format.imageBytes) <= attachment.sizeBytes else {
                return [.closeDevice(luid: luid), .reply(pending.header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: pending.header.uuid, "constructor refused: log device \(attachment.deviceNumber) has \(attachment.sizeBytes) bytes, the log needs \(format.imageBytes)"))]
            }
            return finishConstruct(pending, attachment: attachment)
        }
    }

    // MARK: Cluster inputs

    /// A message delivered in the ordering group.
    public mutating func deliver(from sender: MemberID, bytes: ArraySlice<UInt8>) -> [Directive] {
        guard orderingStatus == .census || orderingStatus == .ready else { return [] }
        let message: ClusterMessage
        do {
            message = try ClusterMessage.decode(bytes)
        } catch {
            guard !refusedMembers.contains(sender) else { return [] }
            refusedMembers.insert(sender)
            if case .unsupportedVersion = error {
                return [.notice(Notice(.error, uuid: nil, "member \(sender) speaks another cluster protocol (\(error)); its messages are refused. Upgrade or downgrade that node's mirrorlogd; see Docs/cluster.md"))]
            }
            return [.notice(Notice(.error, uuid: nil, "refused a message from member \(sender): \(error)"))]
        }
        guard !refusedMembers.contains(sender) else { return [] }
        var out: [Directive] = []
        switch message {
        case let .operations(batches):
            for batch in batches { out += deliverBatch(batch, from: sender) }
            // Only a log's membership (attach, detach) changes what the barrier watches or proves:
            // the common message of kernel requests skips the bookkeeping below.
            let membership = batches.contains { $0.entries.contains { entry in
                if case .attach = entry.operation { return true }
                return entry.operation == .detach
            } }
            if !membership { return out }
        case let .snapshotChunk(chunk):
            if logs[chunk.log] != nil {
                out += logs[chunk.log]?.receive(.chunk(chunk), from: sender, quorum: quorum) ?? []
            }
        case let .census(logs, members, boot):
            // Written before the sender saw us join, it may miss an attach we did not see either
            // (found by the simulation: a joiner founded a second state). A newer one follows.
            // Our own says nothing new, and may name an instance we destroyed since (then it
            // would attach our new instance before its attach).
            guard members.contains(me), sender != me else { break }
            boots[sender] = boot
            for log in logs { out += attach(sender, to: log) }
            if orderingStatus == .census {
                censusPending.remove(sender)
                out += completeCensusIfDone()
            }
        }
        return out + afterClusterInput()
    }

    /// A configuration change of the ordering group.
    public mutating func membershipChanged(_ change: MembershipChange) -> [Directive] {
        guard orderingStatus != .idle else { return [] }
        var out: [Directive] = []
        orderingMembers = change.members
        if change.joined.contains(me), orderingStatus == .joining {
            attachments = [:]
            censusPending = Set(change.members).subtracting([me])
            orderingStatus = .census
            out.append(.notice(Notice(.info, uuid: nil, "joined the ordering group with \(change.members.count - 1) other daemon(s)" + (censusPending.isEmpty ? "" : "; waiting for their census"))))
            return out + completeCensusIfDone() + afterClusterInput()
        }
        // Members that left leave every log they served, with corosync's reason.
        var departures: [[UInt8]: [MembershipChange.Departure]] = [:]
        for departure in change.left {
            censusPending.remove(departure.member)
            if departure.member != me { boots.removeValue(forKey: departure.member) }
            for log in attachments.keys where attachments[log]?.contains(departure.member) == true {
                attachments[log]?.remove(departure.member)
                departures[log, default: []].append(departure)
            }
        }
        // A log instance still joining hears of its membership with its own attach (the list may
        // still name a destroyed instance of ours, which would look like our join).
        for log in departures.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where logs[log] != nil && logs[log]!.status != .joining {
            let members = Array(attachments[log] ?? []).sorted()
            let logChange = MembershipChange(members: members, joined: [], left: departures[log] ?? [], boots: boots)
            out += logs[log]?.membershipChanged(logChange, quorum: quorum) ?? []
        }
        if orderingStatus == .census { out += completeCensusIfDone() }
        // Someone joined (a new daemon, or the other side of a healed partition): tell it what we serve.
        if !change.joined.isEmpty { censusDue = true }
        return out + afterClusterInput()
    }

    /// Quorum changed. Losing it, the node leaves the ordering group: its copy of every log may
    /// diverge from the quorate side, which may be recovering this node's regions. Requests are held.
    /// Regaining it, the node joins again and takes every log's state from the quorate members.
    public mutating func quorumChanged(_ view: QuorumView) -> [Directive] {
        let before = quorum.quorate
        quorum = view
        var out: [Directive] = []
        if before != view.quorate {
            out.append(.notice(Notice(view.quorate ? .info : .warning, uuid: nil, view.quorate
                    ? "quorum regained (\(view.nodes.count) node(s)); rejoining and resuming held requests"
                    : "quorum lost: leaving the ordering group; requests of clustered logs are held until quorum returns (the kernel waits and re-sends; nothing fails)")))
        }
        if !view.quorate, orderingStatus != .idle {
            out.append(.leaveOrderingGroup)
            resetOrdering()
            return out
        }
        if view.quorate, connected, orderingStatus == .idle, !logs.isEmpty {
            orderingStatus = .joining
            out.append(.joinOrderingGroup)
        }
        return out + afterClusterInput()
    }

    /// The DLM reported (see ``FencingBarrier``).
    public mutating func dlm(_ event: DLMEvent) -> [Directive] {
        var out: [Directive] = []
        switch event {
        case let .acquired(adoptedOrphan):
            fencing.own = .held
            out.append(.notice(Notice(.info, uuid: nil, adoptedOrphan
                    ? "took over this node's DLM lock that the previous daemon left behind; peers keep waiting on it, so none recovers its regions: this daemon adopts them"
                    : "holding this node's DLM lock: peers recover this daemon's regions only once it releases it or this node is fenced")))
            let held = awaitingLock
            awaitingLock.removeAll()
            for request in held { out += handleKernel(request) }
        case let .unavailable(reason):
            fencing.own = .unavailable(reason)
            let held = awaitingLock
            awaitingLock.removeAll()
            for request in held {
                out.append(.reply(request.header, .failure(.invalidArgument)))
                out.append(.notice(Notice(.error, uuid: request.header.uuid, "constructor refused: clustered logs need the DLM for fencing, and it cannot be used (\(reason)); start dlm_controld, or run mirrorlogd with --no-fencing to accept the risk")))
            }
        case let .granted(node):
            out += fencing.granted(node: node)
        }
        return out + afterClusterInput()
    }

    /// After any cluster input: watch the nodes of every member we know of, send recover_done where
    /// every failed member is proven gone, and forget proofs nobody needs.
    private mutating func afterClusterInput() -> [Directive] {
        var known = Set(orderingMembers)
        for log in logs.values { if let failed = log.replica?.failed { known.formUnion(failed) } }
        let out = fencing.watch(known.sorted(), me: me)
        for name in logs.keys where logs[name]?.replica?.recoveryPending == true {
            let fencing = self.fencing
            let quorum = self.quorum
            logs[name]?.maybeSendDone(quorum: quorum) { fencing.isGone($0, quorum: quorum) }
        }
        fencing.forget(allBut: known)
        return out
    }

    /// A disk write finished.
    public mutating func completeWrite(_ io: DeviceIO, _ result: Result<Void, DeviceIOError>) -> [Directive] {
        guard case let .clustered(log) = io.log, !finishDraining(log, io.ticket) else { return [] }
        return logs[log]?.completeWrite(ticket: io.ticket, result) ?? []
    }

    /// A disk read finished.
    public mutating func completeRead(_ io: DeviceIO, _ result: Result<[UInt8], DeviceIOError>) -> [Directive] {
        guard case let .clustered(log) = io.log, !finishDraining(log, io.ticket) else { return [] }
        return logs[log]?.completeRead(ticket: io.ticket, result) ?? []
    }

    /// The operations queued since the last call, in one message for every log (requests of many
    /// logs in flight at once share one CPG message). Logs that must hold (no quorum, no state yet
    /// after a partition) keep theirs.
    public mutating func flushOutbound() -> [Directive] {
        guard orderingStatus == .census || orderingStatus == .ready else { return [] }
        var out: [Directive] = []
        if censusDue {
            censusDue = false
            // Only logs with a live, attached instance: a destroyed one's detach may already be on
            // its way ahead of this census, and listing it would attach us again at the others
            // (they then take our next instance's attach for one they had, and never send it the
            // state; found by the simulation, seed 733).
            let served = attachments.filter { entry in
                entry.value.contains(me) && !oldInstances.contains(entry.key) && (logs[entry.key].map { $0.status != .joining } ?? false)
            }.keys.sorted { $0.lexicographicallyPrecedes($1) }
            out.append(.multicast(ClusterMessage.census(logs: served, members: orderingMembers, boot: boot).encoded()))
        }
        var batches: [LogBatch] = detaches.map { LogBatch(log: $0, entries: [TokenedOperation(token: 0, operation: .detach)]) }
        detaches.removeAll()
        for log in logs.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            guard let entries = logs[log]?.outbound, !entries.isEmpty, logs[log]?.mayMulticast(quorum) == true else { continue }
            batches.append(LogBatch(log: log, entries: entries))
            logs[log]?.outbound.removeAll(keepingCapacity: true)
        }
        guard !batches.isEmpty else { return out }
        if operationsPerMessage == .max {
            out.append(.multicast(ClusterMessage.operations(batches).encoded()))
            return out
        }
        for batch in batches {
            var start = 0
            while start < batch.entries.count {
                let end = min(batch.entries.count, start + max(1, operationsPerMessage))
                let part = LogBatch(log: batch.log, entries: Array(batch.entries[start ..< end]))
                out.append(.multicast(ClusterMessage.operations([part]).encoded()))
                start = end
            }
        }
        return out
    }

    /// Whether any group has operations waiting to be multicast.
    public var hasOutbound: Bool { censusDue || !detaches.isEmpty || logs.values.contains { !$0.outbound.isEmpty } }

    /// The CPG connection failed: every group must rejoin and get the state again.
    public mutating func connectionLost() -> [Directive] {
        connected = false
        resetOrdering()
        return logs.isEmpty ? [] : [.notice(Notice(.error, uuid: nil, "lost the connection to corosync: \(logs.count) clustered log(s) hold their requests until it returns"))]
    }

    /// The CPG connection is back: join every group again.
    public mutating func connectionRestored() -> [Directive] {
        connected = true
        guard !logs.isEmpty, orderingStatus == .idle, quorum.quorate else { return [] }
        orderingStatus = .joining
        return [.joinOrderingGroup]
    }

    /// One line per clustered log for state dumps: `cluster-state uuid=… status=… members=…
    /// digest=… sync=a/N generation=… failed=… writer=…`.
    public func dumpLines() -> [String] {
        [fencingLine()] + logs.values.sorted { $0.uuid < $1.uuid }.map { group -> String in
            var line = "cluster-state uuid=\(group.uuid) status=\(group.status.rawValue) me=\(me) luids=\(group.instances.keys.sorted().map(String.init).joined(separator: ","))"
            if let replica = group.replica {
                line += " members=\(replica.members.count) digest=\(hex16(ReplicaSnapshot.digest(replica))) sync=\(replica.log.syncCount)/\(replica.regionCount)"
                line += " generation=\(replica.generation) failed=\(replica.failed.count) resyncing=\(replica.log.recovering.count) priority=\(replica.priority.count)"
                line += " writer=\(replica.diskWriter.map { "\($0)" } ?? "-")"
                if replica.recoveryPending {
                    let waiting = awaitingProof(in: replica)
                    line += " recovery=\(waiting.isEmpty ? "done-sent" : "waiting-for-fencing:" + waiting.map(\.description).joined(separator: ","))"
                    if !replica.cutOff.isEmpty { line += " holding-writes=\(group.heldForRecovery.count)" }
                }
            } else {
                line += " members=\(group.lastMembers.count)"
            }
            line += " pending=\(group.pending.count) outbound=\(group.outbound.count)"
            return line
        }
    }

    /// The fencing barrier for dumps: `fencing mode=dlm node-lock=held watching=2,3 proven=…`.
    func fencingLine() -> String {
        var own = fencing.ownLockName
        if case let .unavailable(reason) = fencing.own { own += "(\(reason))" }
        switch fencing.mode {
        case .unfenced:
            return "fencing mode=none (--no-fencing: failed nodes are trusted to have stopped once quorum drops them)"
        case .dlm:
            return "fencing mode=dlm node-lock=\(own) watching=\(fencing.watching.keys.sorted().map(String.init).joined(separator: ",")) proven-gone=\(fencing.proven.sorted().map(\.description).joined(separator: ","))"
        }
    }

    /// Failed members of `replica` whose recovery still waits for the proof that they are gone.
    public func awaitingProof(in replica: ReplicatedLog) -> [MemberID] {
        replica.failed.filter { !fencing.isGone($0, quorum: quorum) }
    }

    // MARK: Internals

    /// Out of the ordering group: every log waits to attach again.
    private mutating func resetOrdering() {
        orderingStatus = .idle
        orderingMembers = []
        attachments = [:]
        censusPending = []
        censusDue = false
        detaches = []
        draining = [:]
        oldInstances = []
        for name in logs.keys { logs[name]?.connectionLost() }
    }

    /// One log's operations from `sender`: attach and detach become configuration changes of the
    /// log, in place; the rest goes to the log's group.
    private mutating func deliverBatch(_ batch: LogBatch, from sender: MemberID) -> [Directive] {
        var out: [Directive] = []
        var run: [TokenedOperation] = []
        func flushRun(_ node: inout ClusterNode) {
            guard !run.isEmpty else { return }
            if node.logs[batch.log] != nil {
                out += node.logs[batch.log]?.receive(.operations(run), from: sender, quorum: node.quorum) ?? []
            }
            run.removeAll()
        }
        for entry in batch.entries {
            switch entry.operation {
            case let .attach(boot):
                flushRun(&self)
                boots[sender] = boot
                out += attach(sender, to: batch.log)
            case .detach:
                flushRun(&self)
                out += detach(sender, from: batch.log)
            default:
                run.append(entry)
            }
        }
        flushRun(&self)
        return out
    }

    /// `member` serves `log` from here on in the order.
    private mutating func attach(_ member: MemberID, to log: [UInt8]) -> [Directive] {
        let isNew = attachments[log, default: []].insert(member).inserted
        guard logs[log] != nil else { return [] }
        guard let status = logs[log]?.status else { return [] }
        let ourJoin = member == me && status == .joining && !oldInstances.contains(log)
        guard isNew || ourJoin, ourJoin || status != .joining else { return [] }
        if member == me { logs[log]?.attachQueued = false }
        let change = MembershipChange(members: Array(attachments[log] ?? []).sorted(), joined: [member], left: [], boots: boots)
        return logs[log]?.membershipChanged(change, quorum: quorum) ?? []
    }

    /// `member` stopped serving `log` (a clean leave).
    private mutating func detach(_ member: MemberID, from log: [UInt8]) -> [Directive] {
        if member == me { oldInstances.remove(log) }
        guard attachments[log]?.remove(member) != nil else { return [] }
        if attachments[log]?.isEmpty == true { attachments.removeValue(forKey: log) }
        guard let status = logs[log]?.status, member != me, status != .joining else { return [] }
        let change = MembershipChange(members: Array(attachments[log] ?? []).sorted(), joined: [], left: [.init(member, .left)], boots: boots)
        return logs[log]?.membershipChanged(change, quorum: quorum) ?? []
    }

    /// Once every other daemon's census arrived: attach our logs.
    private mutating func completeCensusIfDone() -> [Directive] {
        guard orderingStatus == .census, censusPending.isEmpty else { return [] }
        orderingStatus = .ready
        for log in logs.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where logs[log]?.status == .joining { queueAttach(log) }
        return []
    }

    private mutating func queueAttach(_ log: [UInt8]) {
        logs[log]?.outbound.insert(TokenedOperation(token: 0, operation: .attach(boot: boot)), at: 0)
        logs[log]?.attachQueued = true
    }

    private mutating func construct(_ request: KernelRequest, parsed: ConstructorArguments?) -> [Directive] {
        let header = owned(request.header)
        guard case let .constructor(text) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
        let uuid = header.uuid
        if let name = logOfLUID[header.luid], let group = logs[name] {
            guard group.uuidBytes[...] == header.uuidBytes else {
                return [.reply(header, .failure(.exists)), .notice(Notice(.error, uuid: uuid, "constructor refused: luid \(header.luid) already belongs to '\(group.uuid)'"))]
            }
            let notice = Directive.notice(Notice(.info, uuid: uuid, "constructor re-sent for a known clustered log; state kept"))
            if let attachment = group.instances[header.luid] ?? nil, header.version >= 2, !text.isNULTerminated {
                return [.reply(header, Reply(payload: .deviceName(attachment.deviceNumber))), notice]
            }
            return [.reply(header, .ok), notice]
        }
        guard !header.uuidBytes.isEmpty else {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: nil, "constructor refused: empty uuid"))]
        }
        let arguments: ConstructorArguments
        do {
            arguments = try parsed ?? ConstructorArguments.parse(text.text)
        } catch {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: uuid, "constructor refused: \(error) in '\(text.text)'"))]
        }
        guard connected else {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: uuid, "constructor refused: \(arguments.logType) needs corosync, and mirrorlogd has no connection to it (is corosync running?)"))]
        }
        // The node lock first: a peer that sees us in the group must find it held (FencingBarrier).
        guard fencing.ready else {
            awaitingLock.append(KernelRequest(header: header, type: request.type, payload: request.payload))
            switch fencing.own {
            case .idle, .unavailable:
                fencing.own = .acquiring
                return [.dlm(.acquireNodeLock)]
            case .acquiring, .held:
                return []
            }
        }
        let name = Array(header.uuidBytes)
        if let group = logs[name], group.arguments.regionCount != arguments.regionCount || group.arguments.regionSize != arguments.regionSize || group.arguments.logType != arguments.logType {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: uuid, "constructor refused: this node already serves the log as \(group.arguments.logType) with \(group.arguments.regionCount) regions of \(group.arguments.regionSize) sectors; a clustered log cannot change type or geometry while an instance of it exists"))]
        }
        let pending = PendingConstructor(header: header, arguments: arguments, stateLost: text.isNULTerminated)
        if let device = arguments.logDevice {
            pendingConstructors[header.luid] = pending
            return [.openDevice(luid: header.luid, device)]
        }
        return finishConstruct(pending, attachment: nil)
    }

    private mutating func finishConstruct(_ pending: PendingConstructor, attachment: DeviceAttachment?) -> [Directive] {
        let header = pending.header
        let name = Array(header.uuidBytes)
        var out: [Directive] = []
        if logs[name] == nil {
            if draining.removeValue(forKey: name) != nil { detaches.append(name) }
            instanceSerial += 1
            var log = ClusterLog(uuidBytes: Array(header.uuidBytes), arguments: pending.arguments, me: me, boot: boot, stateLost: pending.stateLost)
            log.nextDiskTicket = instanceSerial << 32
            log.mutation = mutation
            logs[name] = log
            // A detach of the destroyed instance still queued goes out before the new attach: the
            // others must see us leave, or they take the attach for one they already had and never
            // send us the state (found by the simulation).
            switch orderingStatus {
            case .idle:
                if connected && quorum.quorate {
                    orderingStatus = .joining
                    out.append(.joinOrderingGroup)
                }
            case .ready:
                queueAttach(name)
            case .joining, .census:
                break
            }
        }
        logs[name]?.instances[header.luid] = attachment
        logOfLUID[header.luid] = name
        var message = "clustered log created: \(pending.arguments.logType), \(pending.arguments.regionCount) regions of \(pending.arguments.regionSize) sectors"
        if let attachment { message += ", log device \(attachment.deviceNumber)" }
        out.append(.notice(Notice(.info, uuid: header.uuid, message)))
        if let attachment, header.version >= 2, !pending.stateLost {
            out.insert(.reply(header, Reply(payload: .deviceName(attachment.deviceNumber))), at: 0)
        } else {
            out.insert(.reply(header, .ok), at: 0)
        }
        return out
    }

    private mutating func destroy(_ request: KernelRequest) -> [Directive] {
        let header = owned(request.header)
        let luid = header.luid
        guard let name = logOfLUID.removeValue(forKey: luid) else {
            return [.reply(header, .ok)]
        }
        var out: [Directive] = []
        let attachment = logs[name]?.instances.removeValue(forKey: luid) ?? nil
        if attachment != nil { out.append(.closeDevice(luid: luid)) }
        if logs[name]?.instances.isEmpty == true, let group = logs.removeValue(forKey: name) {
            let inFlight = Set(group.diskTickets.keys)
            if group.status != .joining || group.attachQueued {
                if inFlight.isEmpty { detaches.append(name) } else { draining[name] = inFlight }
                oldInstances.insert(name)
            }
            out.append(.notice(Notice(.info, uuid: group.uuid, "clustered log destroyed; this node detaches from it")))
        }
        out.append(.reply(header, .ok))
        return out
    }

    /// A device action of a destroyed log instance finished; the last one lets its detach go out.
    private mutating func finishDraining(_ log: [UInt8], _ ticket: UInt64) -> Bool {
        guard var tickets = draining[log], tickets.remove(ticket) != nil else { return false }
        if tickets.isEmpty {
            draining.removeValue(forKey: log)
            detaches.append(log)
        } else {
            draining[log] = tickets
        }
        return true
    }

    private func owned(_ header: RequestHeader) -> RequestHeader {
        var copy = header
        copy.uuidBytes = ArraySlice(Array(header.uuidBytes))
        return copy
    }

    private func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
