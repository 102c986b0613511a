import MirrorLogCore

/// A simulated corosync CPG with extended virtual synchrony, for driving several ``ClusterNode``s in
/// one process: one total order of messages and configuration changes per run, delivered to the
/// members of the group at that point of the order. Deterministic: no clock, no randomness.
public struct SimulatedCPG: Sendable {
    /// An event in the total order.
    public enum Event: Sendable, Equatable {
        case message(group: String, from: MemberID, bytes: [UInt8])
        case change(group: String, MembershipChange)
    }

    /// Events multicast or generated but not delivered yet, in their agreed order.
    public private(set) var queue: [Event] = []
    /// Members of each group as of the last delivered change.
    public private(set) var members: [String: [MemberID]] = [:]
    /// Members of each group as of the end of the queue (what the next change is computed from).
    private var futureMembers: [String: [MemberID]] = [:]
    /// Number of events delivered so far (the delivery index).
    public private(set) var delivered = 0

    public init() {}

    /// `member` joins `group`: a configuration change goes to the end of the order.
    public mutating func join(_ member: MemberID, group: String) {
        var list = futureMembers[group, default: []]
        guard !list.contains(member) else { return }
        list.append(member)
        list.sort()
        futureMembers[group] = list
        queue.append(.change(group: group, MembershipChange(members: list, joined: [member], left: [])))
    }

    /// `member` leaves `group` for `reason`.
    public mutating func leave(_ member: MemberID, group: String, reason: LeaveReason) {
        var list = futureMembers[group, default: []]
        guard let index = list.firstIndex(of: member) else { return }
        list.remove(at: index)
        futureMembers[group] = list
        queue.append(.change(group: group, MembershipChange(members: list, joined: [], left: [.init(member, reason)])))
    }

    /// `member` leaves every group it is in (a crash of its process or node).
    public mutating func remove(_ member: MemberID, reason: LeaveReason) {
        for group in futureMembers.keys.sorted() where futureMembers[group]!.contains(member) {
            leave(member, group: group, reason: reason)
        }
    }

    /// A multicast from `member`, which must be in the group (as of the end of the order).
    @discardableResult
    public mutating func multicast(_ bytes: [UInt8], group: String, from member: MemberID) -> Bool {
        guard futureMembers[group, default: []].contains(member) else { return false }
        queue.append(.message(group: group, from: member, bytes: bytes))
        return true
    }

    /// Drops undelivered messages of `member` (a failed member's messages reach all or none: here none).
    public mutating func dropUndelivered(from member: MemberID) {
        queue.removeAll {
            if case let .message(_, from, _) = $0 { return from == member }
            return false
        }
    }

    /// Takes the next event and the members it is delivered to.
    public mutating func next() -> (event: Event, recipients: [MemberID])? {
        guard !queue.isEmpty else { return nil }
        let event = queue.removeFirst()
        delivered += 1
        switch event {
        case let .message(group, _, _):
            return (event, members[group, default: []])
        case let .change(group, change):
            let before = members[group, default: []]
            members[group] = change.members
            // The change reaches the members after it, and (for their own leave) nobody else.
            return (event, Array(Set(before + change.members).intersection(change.members)).sorted())
        }
    }
}
