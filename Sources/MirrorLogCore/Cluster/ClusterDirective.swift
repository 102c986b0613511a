/// What the shell must do for the cluster layer. The core decides; the shell carries it out and
/// feeds results back as inputs.
public enum ClusterDirective: Sendable, Equatable {
    /// Send this reply to the kernel (the header is the request's, with its own copy of the uuid).
    case reply(RequestHeader, Reply)
    /// Join the CPG group of a log.
    case join(group: String)
    /// Leave the CPG group of a log (its last local instance was destroyed).
    case leave(group: String)
    /// Multicast these bytes to the group (agreed order). Flow control is the shell's to absorb.
    case multicast(group: String, [UInt8])
    /// Open the log device of a new `clustered-disk` instance, then call ``ClusterNode/completeOpen(luid:_:)``.
    case openDevice(luid: UInt64, LogDeviceSpec)
    /// Close the device of a destroyed instance.
    case closeDevice(luid: UInt64)
    /// Read `byteCount` bytes at offset 0 of the device of instance `luid`, then call
    /// ``ClusterNode/completeRead(ticket:_:)``.
    case readDevice(luid: UInt64, byteCount: Int, ticket: UInt64)
    /// Write these blocks to the device of instance `luid`, then call ``ClusterNode/completeWrite(ticket:_:)``.
    case writeDevice(luid: UInt64, [DiskWrite], ticket: UInt64)
    /// Something for the operator's log.
    case notice(Notice)
    /// Suspend and resume the local dm device of this log, so that its kernel looks for resync work
    /// again: it cached `in_sync_hint` = region count while the mirror was in sync, and only a resume
    /// resets that (a recovery left regions of a failed member to resync).
    case restartRecovery(uuid: String)
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
