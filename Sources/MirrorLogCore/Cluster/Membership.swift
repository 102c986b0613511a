/// Why a member left a CPG group, as corosync reports it in a configuration change.
public enum LeaveReason: Sendable, Equatable, CustomStringConvertible {
    /// The member called `cpg_leave`: a clean leave.
    case left
    /// The member's node left the membership (crash, power loss, lost link).
    case nodeDown
    /// The member's process ended without leaving (crash, kill -9).
    case processDown
    /// Any other code corosync may send; treated as a failure.
    case other(UInt32)

    /// Maps corosync's `CPG_REASON_*` codes (2 leave, 3 node down, 5 process down).
    public init(corosyncCode: UInt32) {
        switch corosyncCode {
        case 2: self = .left
        case 3: self = .nodeDown
        case 5: self = .processDown
        default: self = .other(corosyncCode)
        }
    }

    /// Whether the member may have stopped in the middle of its work.
    public var isFailure: Bool { self != .left }

    public var description: String {
        switch self {
        case .left: "left"
        case .nodeDown: "node down"
        case .processDown: "process down"
        case let .other(code): "reason \(code)"
        }
    }
}

/// One configuration change of a CPG group: who is in it now, who joined, who left and why.
/// All members see the same changes in the same place of the message order.
public struct MembershipChange: Sendable, Equatable {
    /// Members after the change, in ascending order.
    public var members: [MemberID]
    public var joined: [MemberID]
    public var left: [Departure]
    /// The boot id of members' kernels, where known: a joiner's from its ordered attach (the only
    /// one a replicated state takes); others' as this daemon learned them (a founder's only).
    public var boots: [MemberID: UInt64]

    /// A member that left, and why.
    public struct Departure: Sendable, Equatable {
        public var member: MemberID
        public var reason: LeaveReason
        public init(_ member: MemberID, _ reason: LeaveReason) {
            self.member = member
            self.reason = reason
        }
    }

    public init(members: [MemberID], joined: [MemberID], left: [Departure], boots: [MemberID: UInt64] = [:]) {
        self.boots = boots
        self.members = members.sorted()
        self.joined = joined.sorted()
        self.left = left.sorted { $0.member < $1.member }
    }
}
