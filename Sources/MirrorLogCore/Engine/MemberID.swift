/// Identity of a daemon that applies requests to a log: a cluster node and process.
///
/// Single-node logs have one member, ``local``. The cluster layer uses corosync's (nodeid, pid).
public struct MemberID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var nodeID: UInt32
    public var pid: UInt32

    public init(nodeID: UInt32, pid: UInt32) {
        self.nodeID = nodeID
        self.pid = pid
    }

    /// The only member of a log that is not clustered.
    public static let local = MemberID(nodeID: 0, pid: 0)

    public static func < (a: MemberID, b: MemberID) -> Bool {
        (a.nodeID, a.pid) < (b.nodeID, b.pid)
    }

    public var description: String { "\(nodeID)/\(pid)" }
}
