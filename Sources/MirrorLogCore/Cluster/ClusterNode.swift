/// Every clustered log of this daemon: routes kernel requests, deliveries, configuration changes,
/// quorum changes and disk results to the right ``ClusterLogGroup`` and returns what the shell must
/// do. Pure, like ``LogEngine``: values in, directives out.
public struct ClusterNode: Sendable {
    /// This daemon in every group: corosync's node id and our pid.
    public let me: MemberID
    /// Groups by CPG group name.
    public private(set) var groups: [String: ClusterLogGroup] = [:]
    /// Whether the CPG connection is up (groups can be joined).
    public private(set) var connected = true
    public private(set) var quorum: QuorumView

    private var groupOfLUID: [UInt64: String] = [:]
    private var pendingConstructors: [UInt64: PendingConstructor] = [:]
    private var tickets: [UInt64: (group: String, ticket: UInt64)] = [:]
    private var nextTicket: UInt64 = 0

    private struct PendingConstructor: Sendable {
        var header: RequestHeader
        var arguments: ConstructorArguments
        var stateLost: Bool
    }

    public init(me: MemberID, quorum: QuorumView) {
        self.me = me
        self.quorum = quorum
    }

    /// Whether `request` is for a clustered log: a CTR naming a clustered log type, or any request for
    /// a luid this node serves.
    public func claims(_ request: KernelRequest) -> Bool {
        if groupOfLUID[request.header.luid] != nil || pendingConstructors[request.header.luid] != nil { return true }
        guard request.type == .constructor, case let .constructor(text) = request.payload else { return false }
        return Self.namesClusteredType(text.text)
    }

    /// Whether a constructor string names `clustered-core` or `clustered-disk` (its second word).
    public static func namesClusteredType(_ text: String) -> Bool {
        let words = text.split(separator: " ", maxSplits: 2)
        return words.count >= 2 && words[1].hasPrefix("clustered-")
    }

    // MARK: Kernel

    /// A request from the kernel for a clustered log.
    public mutating func handleKernel(_ request: KernelRequest) -> [ClusterDirective] {
        let luid = request.header.luid
        switch request.type {
        case .constructor:
            return construct(request)
        case .destructor:
            return destroy(request)
        default:
            guard let name = groupOfLUID[luid] else {
                let reply = Reply(error: -KernelErrno.noSuchProcess.rawValue, payload: LogEngine.placeholderPayload(for: request.type))
                return [.reply(owned(request.header), reply), .notice(Notice(.warning, uuid: request.header.uuid, "\(request.type) for unknown clustered log (luid \(luid)); answering -ESRCH so the kernel re-sends its constructor"))]
            }
            return groups[name]!.handleKernel(request)
        }
    }

    /// The device of a `clustered-disk` constructor was opened (or not).
    public mutating func completeOpen(luid: UInt64, _ result: Result<DeviceAttachment, DeviceIOError>) -> [ClusterDirective] {
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

    /// A message delivered in group `group`.
    public mutating func deliver(group: String, from sender: MemberID, bytes: ArraySlice<UInt8>) -> [ClusterDirective] {
        guard groups[group] != nil else { return [] }
        return mapTickets(group, groups[group]!.deliver(from: sender, bytes: bytes, quorum: quorum))
    }

    /// A configuration change of group `group`.
    public mutating func membershipChanged(group: String, _ change: MembershipChange) -> [ClusterDirective] {
        guard groups[group] != nil else { return [] }
        return mapTickets(group, groups[group]!.membershipChanged(change, quorum: quorum))
    }

    /// Quorum changed.
    public mutating func quorumChanged(_ view: QuorumView) -> [ClusterDirective] {
        let before = quorum.quorate
        quorum = view
        var out: [ClusterDirective] = []
        if before != view.quorate {
            out.append(.notice(Notice(view.quorate ? .info : .warning, uuid: nil, view.quorate
                    ? "quorum regained (\(view.nodes.count) node(s)); held requests resume"
                    : "quorum lost: requests that change clustered logs are held until it returns (the kernel waits and re-sends; nothing fails)")))
        }
        for name in groups.keys.sorted() { out += mapTickets(name, groups[name]!.quorumChanged(view)) }
        return out
    }

    /// A disk write finished.
    public mutating func completeWrite(ticket: UInt64, _ result: Result<Void, DeviceIOError>) -> [ClusterDirective] {
        guard let target = tickets.removeValue(forKey: ticket), groups[target.group] != nil else { return [] }
        return mapTickets(target.group, groups[target.group]!.completeWrite(ticket: target.ticket, result))
    }

    /// A disk read finished.
    public mutating func completeRead(ticket: UInt64, _ result: Result<[UInt8], DeviceIOError>) -> [ClusterDirective] {
        guard let target = tickets.removeValue(forKey: ticket), groups[target.group] != nil else { return [] }
        return mapTickets(target.group, groups[target.group]!.completeRead(ticket: target.ticket, result))
    }

    /// The operations queued since the last call, one message per group (several kernel requests in
    /// flight share one CPG message). Groups that must hold (no quorum, no state yet after a
    /// partition) keep theirs.
    public mutating func flushOutbound() -> [ClusterDirective] {
        var out: [ClusterDirective] = []
        for name in groups.keys.sorted() where !groups[name]!.outbound.isEmpty && groups[name]!.mayMulticast(quorum) {
            out.append(.multicast(group: name, ClusterMessage.operations(groups[name]!.outbound).encoded()))
            groups[name]!.outbound.removeAll(keepingCapacity: true)
        }
        return out
    }

    /// Whether any group has operations waiting to be multicast.
    public var hasOutbound: Bool { groups.values.contains { !$0.outbound.isEmpty } }

    /// The CPG connection failed: every group must rejoin and get the state again.
    public mutating func connectionLost() -> [ClusterDirective] {
        connected = false
        for name in groups.keys { groups[name]!.connectionLost() }
        return groups.isEmpty ? [] : [.notice(Notice(.error, uuid: nil, "lost the connection to corosync: \(groups.count) clustered log(s) hold their requests until it returns"))]
    }

    /// The CPG connection is back: join every group again.
    public mutating func connectionRestored() -> [ClusterDirective] {
        connected = true
        return groups.keys.sorted().map { .join(group: $0) }
    }

    /// One line per clustered log for state dumps: `cluster-state uuid=… status=… members=…
    /// digest=… sync=a/N generation=… failed=… writer=…`.
    public func dumpLines() -> [String] {
        groups.values.sorted { $0.uuid < $1.uuid }.map { group in
            var line = "cluster-state uuid=\(group.uuid) status=\(group.status.rawValue) me=\(me) luids=\(group.instances.keys.sorted().map(String.init).joined(separator: ","))"
            if let replica = group.replica {
                line += " members=\(replica.members.count) digest=\(hex16(ReplicaSnapshot.digest(replica))) sync=\(replica.log.syncCount)/\(replica.regionCount)"
                line += " generation=\(replica.generation) failed=\(replica.failed.count) resyncing=\(replica.log.recovering.count) priority=\(replica.priority.count)"
                line += " writer=\(replica.diskWriter.map { "\($0)" } ?? "-") stale=\(group.stale)"
            } else {
                line += " members=\(group.lastMembers.count)"
            }
            line += " pending=\(group.pending.count) outbound=\(group.outbound.count)"
            return line
        }
    }

    // MARK: Internals

    private mutating func construct(_ request: KernelRequest) -> [ClusterDirective] {
        let header = owned(request.header)
        guard case let .constructor(text) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
        let uuid = header.uuid
        if let name = groupOfLUID[header.luid] {
            let group = groups[name]!
            guard group.uuidBytes[...] == header.uuidBytes else {
                return [.reply(header, .failure(.exists)), .notice(Notice(.error, uuid: uuid, "constructor refused: luid \(header.luid) already belongs to '\(group.uuid)'"))]
            }
            let notice = ClusterDirective.notice(Notice(.info, uuid: uuid, "constructor re-sent for a known clustered log; state kept"))
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
            arguments = try ConstructorArguments.parse(text.text)
        } catch {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: uuid, "constructor refused: \(error) in '\(text.text)'"))]
        }
        guard connected else {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: uuid, "constructor refused: \(arguments.logType) needs corosync, and mirrorlogd has no connection to it (is corosync running?)"))]
        }
        let name = ClusterLogGroup.groupName(for: uuid)
        if let group = groups[name], group.arguments.regionCount != arguments.regionCount || group.arguments.regionSize != arguments.regionSize || group.arguments.logType != arguments.logType {
            return [.reply(header, .failure(.invalidArgument)), .notice(Notice(.error, uuid: uuid, "constructor refused: this node already serves the log as \(group.arguments.logType) with \(group.arguments.regionCount) regions of \(group.arguments.regionSize) sectors; a clustered log cannot change type or geometry while an instance of it exists"))]
        }
        let pending = PendingConstructor(header: header, arguments: arguments, stateLost: text.isNULTerminated)
        if let device = arguments.logDevice {
            pendingConstructors[header.luid] = pending
            return [.openDevice(luid: header.luid, device)]
        }
        return finishConstruct(pending, attachment: nil)
    }

    private mutating func finishConstruct(_ pending: PendingConstructor, attachment: DeviceAttachment?) -> [ClusterDirective] {
        let header = pending.header
        let name = ClusterLogGroup.groupName(for: header.uuid)
        var out: [ClusterDirective] = []
        if groups[name] == nil {
            groups[name] = ClusterLogGroup(uuidBytes: Array(header.uuidBytes), arguments: pending.arguments, me: me, stateLost: pending.stateLost)
            out.append(.join(group: name))
        }
        groups[name]!.instances[header.luid] = attachment
        groupOfLUID[header.luid] = name
        var message = "clustered log created: \(pending.arguments.logType), \(pending.arguments.regionCount) regions of \(pending.arguments.regionSize) sectors, CPG group '\(name)'"
        if let attachment { message += ", log device \(attachment.deviceNumber)" }
        out.append(.notice(Notice(.info, uuid: header.uuid, message)))
        if let attachment, header.version >= 2, !pending.stateLost {
            out.insert(.reply(header, Reply(payload: .deviceName(attachment.deviceNumber))), at: 0)
        } else {
            out.insert(.reply(header, .ok), at: 0)
        }
        return out
    }

    private mutating func destroy(_ request: KernelRequest) -> [ClusterDirective] {
        let header = owned(request.header)
        let luid = header.luid
        guard let name = groupOfLUID.removeValue(forKey: luid) else {
            return [.reply(header, .ok)]
        }
        var out: [ClusterDirective] = []
        let attachment = groups[name]!.instances.removeValue(forKey: luid) ?? nil
        if attachment != nil { out.append(.closeDevice(luid: luid)) }
        if groups[name]!.instances.isEmpty {
            let group = groups.removeValue(forKey: name)!
            tickets = tickets.filter { $0.value.group != name }
            out.append(.leave(group: name))
            out.append(.notice(Notice(.info, uuid: group.uuid, "clustered log destroyed; left its group")))
        }
        out.append(.reply(header, .ok))
        return out
    }

    private mutating func mapTickets(_ group: String, _ directives: [ClusterDirective]) -> [ClusterDirective] {
        directives.map { directive in
            switch directive {
            case let .readDevice(luid, byteCount, ticket):
                nextTicket += 1
                tickets[nextTicket] = (group, ticket)
                return .readDevice(luid: luid, byteCount: byteCount, ticket: nextTicket)
            case let .writeDevice(luid, writes, ticket):
                nextTicket += 1
                tickets[nextTicket] = (group, ticket)
                return .writeDevice(luid: luid, writes, ticket: nextTicket)
            default:
                return directive
            }
        }
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
