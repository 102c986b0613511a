/// The part of a delivered message that concerns one log.
enum LogEvent: Sendable {
    case operations([TokenedOperation])
    case chunk(SnapshotChunk)
}

/// One clustered log as this member sees it: its membership, the replicated state once
/// it has it, the kernel requests of its local instances waiting for their ordered answers, and the
/// operations waiting to be multicast.
///
/// Pure: every input returns directives. ``ClusterNode`` owns the clustered logs and routes to them.
public struct ClusterLog: Sendable {
    public let uuid: String
    public let uuidBytes: [UInt8]
    public let arguments: ConstructorArguments
    /// This daemon's identity in the group.
    public let me: MemberID
    /// The boot id of this daemon's kernel.
    public let boot: UInt64

    /// Where this member is with the log, each phase with what it holds (as swift-nio-http2's
    /// connection states carry their data).
    public enum Phase: Sendable {
        /// The attach was asked for; the configuration change that includes us has not come yet.
        case joining
        /// Attached, waiting for a state transfer and buffering what is delivered meanwhile.
        case awaitingState(StateWait)
        /// Holding the replicated state.
        case active(ReplicatedLog)
    }

    /// What a member waiting for the state keeps.
    public struct StateWait: Sendable {
        /// What was delivered while waiting, tagged with ``ClusterLog/epoch``.
        var buffer: [(epoch: UInt64, event: BufferedEvent)] = []
        /// A transfer being reassembled.
        var assembly: Assembly?
        /// The members that were there when we joined and have not left (only they can hold the
        /// state; anybody who joined later waits for it too).
        var holders: Set<MemberID>
    }

    /// The phase's name, for dumps and checks.
    public enum Status: String, Sendable, Equatable {
        case joining
        case awaitingState
        case active
    }

    public internal(set) var phase: Phase = .joining

    public var status: Status {
        switch phase {
        case .joining: .joining
        case .awaitingState: .awaitingState
        case .active: .active
        }
    }

    /// The replicated state, once founded or transferred.
    public var replica: ReplicatedLog? {
        if case let .active(state) = phase { return state }
        return nil
    }

    /// Runs `body` on the replicated state in place; nil when there is none.
    @discardableResult
    mutating func withReplica<T>(_ body: (inout ReplicatedLog) -> T) -> T? {
        guard case var .active(state) = phase else { return nil }
        phase = .joining   // the enum lets go of the state, so it is changed in place
        let result = body(&state)
        phase = .active(state)
        return result
    }

    /// Runs `body` on what a waiting member keeps, in place; nil when not waiting.
    @discardableResult
    mutating func withStateWait<T>(_ body: (inout StateWait) -> T) -> T? {
        guard case var .awaitingState(wait) = phase else { return nil }
        phase = .joining
        let result = body(&wait)
        phase = .awaitingState(wait)
        return result
    }
    /// Local instances of the log (a table reload has two), by luid, with their device attachment.
    public internal(set) var instances: [UInt64: DeviceAttachment?] = [:]

    /// Configuration changes seen since we joined (our join is 1); names the transfer point.
    var epoch: UInt64 = 0
    /// Kernel requests waiting for their ordered answer, by token.
    var pending: [UInt64: PendingRequest] = [:]
    var nextToken: UInt64 = 1
    /// Operations to multicast at the next ``ClusterNode/flushOutbound()``.
    var outbound: [TokenedOperation] = []
    /// Local FLUSH/POSTSUSPEND waiting for the writer: (flush number, token).
    var flushWaiters: [(number: UInt64, token: UInt64)] = []
    /// Local RESUMEs waiting for the first read of the log device.
    var loadWaiters: [UInt64] = []
    /// Local view: all regions were in sync since our last RESUME (IN_SYNC then answers 1).
    var latched = false
    /// Our kernel may have cached in_sync_hint = region count: it was told the mirror is in sync
    /// (GET_SYNC_COUNT), or it reconnected to this daemon with a hint from before. Only a real
    /// resume resets that hint; the kernel's reconnect RESUME does not.
    var kernelHintMayBeFull = false
    /// The first RESUME after a reconnect constructor was applied.
    var reconnectResumeSeen = false
    /// Regions our kernel holds marks on, to re-mark after we rejoin with a fresh state.
    var localMarks: Bitmap
    /// The kernel reconnected after the daemon was gone (CTR with NUL): a founder cannot trust memory.
    let stateLost: Bool
    var snapshotSerial: UInt64 = 0
    var diskLoadInProgress = false
    /// Disk actions in progress, by ticket.
    var diskTickets: [UInt64: DiskTicket] = [:]
    var nextDiskTicket: UInt64 = 0
    /// As the writer: a write failed and no whole-image write succeeded since.
    var unrepairedWriteFailure = false
    /// Our requests the state held while a failed member may be on the surviving side of a split
    /// (``ReplicatedLog/Outcome/held``); they go out again once its recovery is done.
    var heldForRecovery: [TokenedOperation] = []
    /// Members of the group at the last configuration change.
    var lastMembers: [MemberID] = []
    /// The recovery generation we already sent a done for.
    var doneSentFor: UInt64 = 0
    /// Our attach is queued or in flight: operations may follow it in the same message.
    var attachQueued = false
    /// A deliberately broken rule, for the simulation's mutation tests only (nil in every daemon).
    var mutation: ClusterMutation?

    enum BufferedEvent: Sendable {
        case message(MemberID, LogEvent)
        case change(MembershipChange)
    }

    struct Assembly: Sendable {
        var donor: MemberID
        var serial: UInt64
        var point: UInt64
        var recipients: [MemberID]
        var data: [UInt8]
        var next: Int
    }

    init(uuidBytes: [UInt8], arguments: ConstructorArguments, me: MemberID, boot: UInt64, stateLost: Bool) {
        self.boot = boot
        self.uuidBytes = uuidBytes
        self.uuid = String(decoding: uuidBytes, as: UTF8.self)
        self.arguments = arguments
        self.me = me
        self.stateLost = stateLost
        self.localMarks = Bitmap(count: arguments.regionCount)
        self.kernelHintMayBeFull = stateLost
    }

    /// Any local instance's luid (disk I/O goes through its device).
    var deviceLUID: UInt64? { instances.keys.min() }

    /// A fresh single-member log of this group, on this member's device.
    func templateLog(stateLost: Bool) -> MirrorLog {
        let luid = deviceLUID ?? 0
        let attachment = instances[luid] ?? nil
        return MirrorLog(uuidBytes: uuidBytes, luid: luid, arguments: arguments, attachment: attachment, stateLost: stateLost)
    }

    /// A device action of this log on instance `luid`'s device.
    func io(_ luid: UInt64, _ ticket: UInt64) -> DeviceIO { DeviceIO(luid: luid, log: .clustered(uuid: uuidBytes), ticket: ticket) }

    /// Whether this member writes the shared log device.
    var isDiskWriter: Bool { replica?.diskWriter == me && arguments.logType.hasLogDevice }

    func notice(_ level: Notice.Level, _ message: String) -> Directive {
        .notice(Notice(level, uuid: uuid, message))
    }
}
