import MirrorLogCore

/// Several daemons (``ClusterNode``s) over a ``SimulatedCPG``, with shared simulated log devices and
/// a record of every reply. Tests and the simulation runner drive it step by step.
public struct SimulatedCluster: Sendable {
    public var cpg = SimulatedCPG()
    /// Live daemons.
    public private(set) var nodes: [MemberID: ClusterNode] = [:]
    /// Replies each daemon sent to its kernel, in order.
    public private(set) var replies: [MemberID: [(header: RequestHeader, reply: Reply)]] = [:]
    /// Notices each daemon logged.
    public private(set) var notices: [MemberID: [Notice]] = [:]
    /// Shared log devices by device spec text, as byte images.
    public var devices: [String: [UInt8]] = [:]
    /// Device writes fail while true (per device).
    public var failingDevices: Set<String> = []
    /// Which device each (member, luid) opened.
    private var opened: [MemberID: [UInt64: String]] = [:]
    public var blockSize = 512
    /// Recovery restarts the daemons asked for (suspend and resume of their kernel's device).
    public private(set) var recoveryRestarts: [(member: MemberID, uuid: String)] = []
    public var quorum = QuorumView(quorate: true, nodes: [])

    public init() {}

    /// Starts a daemon.
    public mutating func start(_ member: MemberID) {
        nodes[member] = ClusterNode(me: member, quorum: quorum)
    }

    /// Kills a daemon (its undelivered messages are lost) and removes it from its groups.
    public mutating func crash(_ member: MemberID, reason: LeaveReason = .processDown) {
        nodes.removeValue(forKey: member)
        opened.removeValue(forKey: member)
        cpg.dropUndelivered(from: member)
        cpg.remove(member, reason: reason)
    }

    /// A kernel request from `member`'s kernel; directives are carried out at once (disk I/O too),
    /// multicasts are queued in the CPG.
    public mutating func send(_ request: KernelRequest, on member: MemberID) {
        guard nodes[member] != nil else { return }
        let out = nodes[member]!.handleKernel(request)
        run(out, on: member)
    }

    /// Multicasts every daemon's queued operations.
    public mutating func flushOutbound() {
        for member in nodes.keys.sorted() {
            guard nodes[member] != nil else { continue }
            let out = nodes[member]!.flushOutbound()
            run(out, on: member)
        }
    }

    /// Delivers the next event of the total order. Returns false when nothing is queued.
    @discardableResult
    public mutating func step() -> Bool {
        guard let (event, recipients) = cpg.next() else { return false }
        for member in recipients where nodes[member] != nil {
            let out: [ClusterDirective]
            switch event {
            case let .message(group, from, bytes):
                out = nodes[member]!.deliver(group: group, from: from, bytes: bytes[...])
            case let .change(group, change):
                out = nodes[member]!.membershipChanged(group: group, change)
            }
            run(out, on: member)
        }
        return true
    }

    /// Flushes and delivers until nothing is left (bounded).
    public mutating func settle(maxSteps: Int = 100_000) {
        for _ in 0 ..< maxSteps {
            flushOutbound()
            if !step() { return }
        }
    }

    /// Changes quorum on every live daemon.
    public mutating func setQuorum(_ view: QuorumView, on members: [MemberID]? = nil) {
        if members == nil { quorum = view }
        for member in members ?? nodes.keys.sorted() where nodes[member] != nil {
            let out = nodes[member]!.quorumChanged(view)
            run(out, on: member)
        }
    }

    /// The replies `member` sent, for tests.
    public func replies(of member: MemberID) -> [(header: RequestHeader, reply: Reply)] { replies[member] ?? [] }

    /// The last reply `member` sent for seq `seq`.
    public func reply(of member: MemberID, seq: UInt32) -> Reply? {
        replies[member]?.last { $0.header.seq == seq }?.reply
    }

    mutating func run(_ directives: [ClusterDirective], on member: MemberID) {
        var work = directives
        var index = 0
        while index < work.count {
            let directive = work[index]
            index += 1
            guard nodes[member] != nil else { return }
            switch directive {
            case let .reply(header, reply):
                replies[member, default: []].append((header, reply))
            case let .join(group):
                cpg.join(member, group: group)
            case let .leave(group):
                cpg.leave(member, group: group, reason: .left)
            case let .multicast(group, bytes):
                cpg.multicast(bytes, group: group, from: member)
            case let .openDevice(luid, spec):
                let name = spec.description
                if devices[name] == nil { devices[name] = [UInt8](repeating: 0, count: 1 << 20) }
                opened[member, default: [:]][luid] = name
                let attachment = DeviceAttachment(major: 7, minor: 0, blockSize: blockSize, sizeBytes: UInt64(devices[name]!.count))
                work += nodes[member]!.completeOpen(luid: luid, .success(attachment))
            case let .closeDevice(luid):
                opened[member]?.removeValue(forKey: luid)
            case let .readDevice(luid, byteCount, ticket):
                let name = opened[member]?[luid] ?? ""
                let image = devices[name].map { Array($0.prefix(byteCount)) }
                let result: Result<[UInt8], DeviceIOError> = image.map { .success($0) } ?? .failure(DeviceIOError(errno: 19, operation: "read"))
                work += nodes[member]!.completeRead(ticket: ticket, result)
            case let .writeDevice(luid, writes, ticket):
                let name = opened[member]?[luid] ?? ""
                if devices[name] == nil || failingDevices.contains(name) {
                    work += nodes[member]!.completeWrite(ticket: ticket, .failure(DeviceIOError(errno: 5, operation: "write")))
                } else {
                    for write in writes {
                        let start = Int(write.offset)
                        devices[name]!.replaceSubrange(start ..< start + write.bytes.count, with: write.bytes)
                    }
                    work += nodes[member]!.completeWrite(ticket: ticket, .success(()))
                }
            case let .restartRecovery(uuid):
                recoveryRestarts.append((member, uuid))
            case let .notice(notice):
                notices[member, default: []].append(notice)
            }
        }
    }
}
