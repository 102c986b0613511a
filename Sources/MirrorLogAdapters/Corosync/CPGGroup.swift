import SystemPackage
internal import CCorosync
import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

/// One corosync CPG handle joined to one group: multicasts bytes and turns corosync's callbacks into
/// ``CPGEvent`` values. It decides nothing; the caller owns the fd, polls it and calls ``dispatch()``.
///
/// Not thread-safe: one thread (the event loop) uses it.
public final class CPGGroup {
    /// The group name as given (at most `CPG_MAX_NAME_LENGTH` = 128 bytes of UTF-8).
    public let name: String
    /// This process as a member of the group: the local nodeid and our pid.
    public let localMember: MemberID
    /// The descriptor to poll for readability (`cpg_fd_get`); call ``dispatch()`` when it is readable.
    /// POLLHUP/POLLERR on it mean corosync is gone (``dispatch()`` then throws). Owned by the handle.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    private let fd: Int32

    private let handle: cpg_handle_t
    private var groupName: cpg_name
    private let sink: CPGEventSink
    private var isClosed = false

    /// The longest group name corosync accepts, in bytes.
    public static let maximumNameLength = Int(CPG_MAX_NAME_LENGTH)

    /// Connects to the local corosync (`cpg_model_initialize`, CPG_MODEL_V1). Does not join: see ``join()``.
    ///
    /// Throws `CS_ERR_NAME_TOO_LONG` for a name over 128 bytes, without contacting corosync.
    /// `patience` bounds the retries of `CS_ERR_TRY_AGAIN`: ``RetryPatience/tool`` sleeps up to about
    /// 1 s, ``RetryPatience/eventLoop`` a few milliseconds.
    public init(name: String, patience: RetryPatience = .tool) throws(CorosyncError) {
        let bytes = Array(name.utf8)
        guard bytes.count <= Self.maximumNameLength else {
            throw CorosyncError(code: CorosyncError.nameTooLong,
                                operation: "cpg group name of \(bytes.count) bytes (at most \(Self.maximumNameLength)): \(name)")
        }
        var groupName = cpg_name()
        groupName.length = UInt32(bytes.count)
        withUnsafeMutableBytes(of: &groupName.value) { $0.copyBytes(from: bytes) }

        let sink = CPGEventSink()
        var model = cpg_model_v1_data_t()
        model.model = CPG_MODEL_V1
        model.cpg_deliver_fn = cpgDeliver
        model.cpg_confchg_fn = cpgConfigurationChange
        model.cpg_totem_confchg_fn = nil
        model.flags = 0
        let context = Unmanaged.passUnretained(sink).toOpaque()
        var handle = cpg_handle_t()
        var backoff = patience.backoff()
        let initialized = backoff.retrying {
            withUnsafeMutablePointer(to: &model) { pointer in
                pointer.withMemoryRebound(to: cpg_model_data_t.self, capacity: 1) {
                    cpg_model_initialize(&handle, CPG_MODEL_V1, $0, context)
                }
            }
        }
        try checkCS(initialized, "cpg_model_initialize")

        var nodeID: UInt32 = 0
        let local = cpg_local_get(handle, &nodeID)
        guard local == CS_OK else {
            cpg_finalize(handle)
            throw CorosyncError(local, "cpg_local_get")
        }
        var fd: Int32 = -1
        let gotFD = cpg_fd_get(handle, &fd)
        guard gotFD == CS_OK else {
            cpg_finalize(handle)
            throw CorosyncError(gotFD, "cpg_fd_get")
        }
        self.fd = fd
        self.name = name
        self.groupName = groupName
        self.handle = handle
        self.sink = sink
        self.localMember = MemberID(nodeID: nodeID, pid: UInt32(bitPattern: getpid()))
    }

    deinit { close() }

    /// Joins the group (`cpg_join`), retrying `CS_ERR_TRY_AGAIN` for about 1 s (tools; an event loop
    /// uses ``tryJoin()``). The join shows up later as a ``CPGEvent/membershipChanged(_:)`` that
    /// lists ``localMember`` as joined.
    public func join() throws(CorosyncError) {
        var backoff = RetryBackoff.control()
        let result = backoff.retrying { cpg_join(handle, &groupName) }
        try checkCS(result, "cpg_join \(name)")
    }

    /// One `cpg_join` attempt that never sleeps: false when corosync answered `CS_ERR_TRY_AGAIN`
    /// (a configuration change in progress); the caller tries again from its event loop.
    public func tryJoin() throws(CorosyncError) -> Bool {
        let result = cpg_join(handle, &groupName)
        if result == CS_ERR_TRY_AGAIN { return false }
        try checkCS(result, "cpg_join \(name)")
        return true
    }

    /// Leaves the group (`cpg_leave`), retrying `CS_ERR_TRY_AGAIN` for about 1 s (tools).
    public func leave() throws(CorosyncError) {
        var backoff = RetryBackoff.control()
        let result = backoff.retrying { cpg_leave(handle, &groupName) }
        try checkCS(result, "cpg_leave \(name)")
    }

    /// One `cpg_leave` attempt that never sleeps: false when corosync answered `CS_ERR_TRY_AGAIN`.
    public func tryLeave() throws(CorosyncError) -> Bool {
        let result = cpg_leave(handle, &groupName)
        if result == CS_ERR_TRY_AGAIN { return false }
        try checkCS(result, "cpg_leave \(name)")
        return true
    }

    /// Multicasts `message` to the group in agreed (total) order.
    ///
    /// Under flow control (`CS_ERR_TRY_AGAIN`) it retries for about 20 ms, then returns
    /// ``MulticastOutcome/flowControlled``: the caller keeps the message and tries again later.
    /// Any other failure throws.
    public func multicast(_ message: [UInt8]) throws(CorosyncError) -> MulticastOutcome {
        var backoff = RetryBackoff.multicast()
        let result = message.withUnsafeBytes { bytes in
            var vector = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
            return backoff.retrying { cpg_mcast_joined(handle, CPG_TYPE_AGREED, &vector, 1) }
        }
        if result == CS_ERR_TRY_AGAIN { return .flowControlled }
        try checkCS(result, "cpg_mcast_joined \(name) (\(message.count) bytes)")
        return .sent
    }

    /// Runs every pending callback (`cpg_dispatch`, CS_DISPATCH_ALL) and returns what they reported, in order.
    /// Does not block. Throws when the connection to corosync is lost (see ``CorosyncError/isConnectionLost``);
    /// events reported before the failure are dropped with it, since the handle is dead.
    public func dispatch() throws(CorosyncError) -> [CPGEvent] {
        defer { sink.events.removeAll(keepingCapacity: true) }
        try checkCS(cpg_dispatch(handle, CS_DISPATCH_ALL), "cpg_dispatch \(name)")
        return sink.events
    }

    /// Disconnects (`cpg_finalize`) once. Without a ``leave()`` first, the other members see this one depart
    /// as ``LeaveReason/processDown`` (as after a crash), not ``LeaveReason/left``.
    /// Later calls fail with `CS_ERR_BAD_HANDLE`.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        cpg_finalize(handle)
    }
}

/// Collects the callbacks' reports during `cpg_dispatch`; the handle's context pointer points at it.
final class CPGEventSink {
    var events: [CPGEvent] = []
}

private func sink(of handle: cpg_handle_t) -> CPGEventSink? {
    var context: UnsafeMutableRawPointer?
    guard cpg_context_get(handle, &context) == CS_OK, let context else { return nil }
    return Unmanaged<CPGEventSink>.fromOpaque(context).takeUnretainedValue()
}

private func members(_ list: UnsafePointer<cpg_address>?, _ count: Int) -> [MemberID] {
    guard let list else { return [] }
    return UnsafeBufferPointer(start: list, count: count).map { MemberID(nodeID: $0.nodeid, pid: $0.pid) }
}

private let cpgDeliver: cpg_deliver_fn_t = { handle, _, nodeID, pid, message, length in
    let bytes = message.map { Array(UnsafeRawBufferPointer(start: $0, count: length)) } ?? []
    sink(of: handle)?.events.append(.delivered(from: MemberID(nodeID: nodeID, pid: pid), message: bytes))
}

private let cpgConfigurationChange: cpg_confchg_fn_t = { handle, _, memberList, memberCount, leftList, leftCount, joinedList, joinedCount in
    var left: [MembershipChange.Departure] = []
    if let leftList {
        left = UnsafeBufferPointer(start: leftList, count: leftCount).map {
            MembershipChange.Departure(MemberID(nodeID: $0.nodeid, pid: $0.pid), LeaveReason(corosyncCode: $0.reason))
        }
    }
    let change = MembershipChange(members: members(memberList, memberCount),
                                  joined: members(joinedList, joinedCount), left: left)
    sink(of: handle)?.events.append(.membershipChanged(change))
}
