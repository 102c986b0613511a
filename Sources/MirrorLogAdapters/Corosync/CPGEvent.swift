import MirrorLogCore

/// What a CPG group reported during one dispatch, as values, in corosync's order.
public enum CPGEvent: Sendable, Equatable {
    /// A message multicast to the group, our own included (copied out of corosync's buffer).
    case delivered(from: MemberID, message: [UInt8])
    /// A configuration change of the group.
    case membershipChanged(MembershipChange)
}

/// The result of a multicast: sent, or refused for now by corosync's flow control (queue it and retry later).
public enum MulticastOutcome: Sendable, Equatable {
    case sent
    case flowControlled
}
