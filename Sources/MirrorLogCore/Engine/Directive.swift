/// What the shell must do. The core decides, the shell carries it out and feeds each result back as an
/// input. The local engine and the cluster node speak this one vocabulary; every directive that has
/// a result to report names the log it belongs to, so the result finds its way back without lookup
/// tables in between.
public enum Directive: Sendable, Equatable {
    /// Send this reply to the kernel (the header is the request's).
    case reply(RequestHeader, Reply)
    /// Open the log device named in the table for instance `luid`, then report with
    /// `completeOpen(luid:_:)`.
    case openDevice(luid: UInt64, LogDeviceSpec)
    /// Close the device of instance `luid` (destroyed, or refused after the open).
    case closeDevice(luid: UInt64)
    /// Read `byteCount` bytes at offset 0 of the log device, then report with `completeRead(_:_:)`.
    case readDevice(DeviceIO, byteCount: Int)
    /// Write these blocks to the log device (O_DIRECT), then report with `completeWrite(_:_:)`.
    case writeDevice(DeviceIO, [DiskWrite])
    /// Something for the operator's log.
    case notice(Notice)
    /// Suspend and resume the local dm device of this log, so that its kernel looks for resync work
    /// again: it cached `in_sync_hint` = region count while the mirror was in sync, and only a resume
    /// resets that.
    case restartRecovery(uuid: String)
    /// Join the CPG ordering group (``ClusterNode/orderingGroup``).
    case joinOrderingGroup
    /// Leave the ordering group.
    case leaveOrderingGroup
    /// Multicast these bytes to the ordering group (agreed order). Flow control is the shell's to
    /// absorb: it keeps refused messages in order and sends them first, and reports how many it
    /// holds with each tick.
    case multicast([UInt8])
    /// Connect to corosync (quorum and CPG, without blocking), then report with
    /// ``MirrorLogService/corosyncConnected(me:quorum:now:)`` or
    /// ``MirrorLogService/corosyncUnavailable(_:now:)``.
    case connectCorosync
    /// Act in the DLM for the fencing barrier (``FencingBarrier``); results come back as
    /// ``DLMEvent``s through ``MirrorLogService/dlm(_:now:)``.
    case dlm(DLMRequest)
    /// Run the event loop's tick again at this monotonic time (nanoseconds) at the latest.
    case wake(at: UInt64)
}

/// One device read or write: the instance whose device it uses, the log it belongs to and the
/// log's ticket for it. The shell hands it back with the result.
public struct DeviceIO: Sendable, Hashable {
    /// The kernel's log instance whose device is used.
    public var luid: UInt64
    /// The log the result goes to.
    public var log: LogKey
    /// The log's own number for this action.
    public var ticket: UInt64

    public init(luid: UInt64, log: LogKey, ticket: UInt64) {
        self.luid = luid
        self.log = log
        self.ticket = ticket
    }
}

/// Which log a result belongs to: a local log by its instance, a clustered log by its uuid.
public enum LogKey: Sendable, Hashable {
    case local(luid: UInt64)
    case clustered(uuid: [UInt8])
}

/// Whether this node may change replicated state, as votequorum reports it.
public struct QuorumView: Sendable, Equatable {
    public var quorate: Bool
    /// Node ids in the quorum's view of the membership.
    public var nodes: Set<UInt32>

    public init(quorate: Bool, nodes: Set<UInt32>) {
        self.quorate = quorate
        self.nodes = nodes
    }
}
