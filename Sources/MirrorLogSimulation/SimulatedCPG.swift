import MirrorLogCore

/// A simulated corosync CPG with extended virtual synchrony, for driving several ``ClusterNode``s in
/// one process. Deterministic: no clock, no randomness (the caller chooses every interleaving).
///
/// The cluster is made of *components*: sets of node ids that can talk to each other (one component
/// normally; two after a partition). Each component has one total order of messages and
/// configuration changes, and every event is delivered to the members of the group at that point of
/// that order. Configuration changes are computed when they are delivered, from the component's view
/// at that point, so joins and leaves queued before a partition land on the right side of it.
///
/// - A partition is a marker in a component's order: what comes before it reaches everybody, what
///   comes after it reaches only the sender's side. Each side sees the other side's members leave
///   with reason `nodeDown`.
/// - A merge is a marker in both components' orders; when both reach it, each side sees the other
///   side's members join, and the rest of both orders continues in the merged component.
/// - A failed member's undelivered messages reach every survivor (left in the order) or none
///   (``dropUndelivered(from:)``).
public struct SimulatedCPG: Sendable {
    /// An event in a total order.
    public enum Event: Sendable, Equatable {
        case message(group: String, from: MemberID, bytes: [UInt8])
        case change(group: String, MembershipChange)
    }

    /// One event as one member receives it (the two sides of a merge see different `joined` lists).
    public struct Delivery: Sendable {
        public var member: MemberID
        public var event: Event
    }

    /// What the order holds before delivery; changes are computed at delivery.
    enum Intent: Sendable {
        case message(group: String, from: MemberID, bytes: [UInt8])
        case join(group: String, MemberID)
        case leave(group: String, MemberID, LeaveReason)
        /// These nodes split off into a new component.
        case split(Set<UInt32>)
        /// Merge with the component whose head is the marker with the same number.
        case merge(UInt64)
    }

    /// A set of nodes that can talk to each other, with its own total order.
    public struct Component: Sendable {
        public internal(set) var id: Int
        public internal(set) var nodes: Set<UInt32>
        /// Members of each group as of the last delivered event of this component.
        public internal(set) var members: [String: [MemberID]] = [:]
        var queue: [Intent] = []
        var head = 0

        /// Events queued and not delivered yet.
        public var pending: Int { queue.count - head }

        mutating func pop() -> Intent {
            let intent = queue[head]
            head += 1
            if head > 64 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            return intent
        }

        mutating func insert(_ intent: Intent, at position: Int) {
            queue.insert(intent, at: head + min(max(0, position), pending))
        }
    }

    public private(set) var components: [Component] = [Component(id: 0, nodes: [])]
    /// Groups each member asked to join and has not asked to leave (what multicast is checked against).
    private var joinedGroups: [MemberID: Set<String>] = [:]
    /// Number of events delivered so far, in all components.
    public private(set) var delivered = 0
    private var nextComponentID = 1
    private var nextMarker: UInt64 = 1

    public init() {}

    // MARK: Compatibility views (a single component)

    /// Members of each group in the first component.
    public var members: [String: [MemberID]] { components[0].members }

    /// Events queued in every component.
    public var pendingCount: Int { components.reduce(0) { $0 + $1.pending } }

    // MARK: Topology

    /// The index of the component holding `node`; an unknown node joins the first component.
    public mutating func componentIndex(ofNode node: UInt32) -> Int {
        if let index = components.firstIndex(where: { $0.nodes.contains(node) }) { return index }
        components[0].nodes.insert(node)
        return 0
    }

    /// The index of the component holding `node`, if any.
    public func existingComponent(ofNode node: UInt32) -> Int? {
        components.firstIndex { $0.nodes.contains(node) }
    }

    /// A node starts (or reboots) in component `index`.
    public mutating func addNode(_ node: UInt32, toComponent index: Int) {
        for i in components.indices { components[i].nodes.remove(node) }
        components[index].nodes.insert(node)
    }

    /// A node stops: it is no longer in any component (its members must have been removed).
    public mutating func removeNode(_ node: UInt32) {
        for i in components.indices { components[i].nodes.remove(node) }
    }

    /// Whether a partition or merge is queued and not yet delivered.
    public var topologyChangePending: Bool {
        components.contains { c in
            c.queue[c.head...].contains {
                switch $0 {
                case .split, .merge: true
                default: false
                }
            }
        }
    }

    /// Queues a partition of component `index`: `nodes` split off at `position` of its order.
    public mutating func partition(component index: Int, splitting nodes: Set<UInt32>, at position: Int) {
        components[index].insert(.split(nodes), at: position)
    }

    /// Queues a merge of components `a` and `b`, at `positionA` and `positionB` of their orders.
    public mutating func merge(_ a: Int, _ b: Int, at positionA: Int, _ positionB: Int) {
        let marker = nextMarker
        nextMarker += 1
        components[a].insert(.merge(marker), at: positionA)
        components[b].insert(.merge(marker), at: positionB)
    }

    /// Whether component `index` has something it can deliver now (a merge waits for its partner).
    public func canDeliver(_ index: Int) -> Bool {
        let c = components[index]
        guard c.pending > 0 else { return false }
        if case let .merge(marker) = c.queue[c.head] { return partner(of: index, marker) != nil }
        return true
    }

    // MARK: Inputs

    /// `member` joins `group`: a configuration change goes to the end of its component's order.
    public mutating func join(_ member: MemberID, group: String) {
        guard !(joinedGroups[member]?.contains(group) ?? false) else { return }
        joinedGroups[member, default: []].insert(group)
        let index = componentIndex(ofNode: member.nodeID)
        components[index].queue.append(.join(group: group, member))
    }

    /// `member` leaves `group` for `reason`.
    public mutating func leave(_ member: MemberID, group: String, reason: LeaveReason) {
        guard joinedGroups[member]?.contains(group) ?? false else { return }
        joinedGroups[member]!.remove(group)
        // A stopped node is in no component: its leave goes where the group still lists it.
        let index = existingComponent(ofNode: member.nodeID)
            ?? components.firstIndex { $0.members[group]?.contains(member) ?? false }
            ?? components.firstIndex { c in
                c.queue[c.head...].contains {
                    if case let .join(g, m) = $0 { return g == group && m == member }
                    return false
                }
            }
            ?? 0
        components[index].queue.append(.leave(group: group, member, reason))
    }

    /// `member` leaves every group it is in (a crash of its process or node).
    public mutating func remove(_ member: MemberID, reason: LeaveReason) {
        for group in (joinedGroups[member] ?? []).sorted() { leave(member, group: group, reason: reason) }
        joinedGroups.removeValue(forKey: member)
    }

    /// A multicast from `member`, which must have joined the group (and not left it).
    @discardableResult
    public mutating func multicast(_ bytes: [UInt8], group: String, from member: MemberID) -> Bool {
        guard joinedGroups[member]?.contains(group) ?? false else { return false }
        let index = componentIndex(ofNode: member.nodeID)
        components[index].queue.append(.message(group: group, from: member, bytes: bytes))
        return true
    }

    /// Drops undelivered messages of `member` (a failed member's messages reach all or none: here none).
    public mutating func dropUndelivered(from member: MemberID) {
        for i in components.indices {
            let c = components[i]
            let rest = c.queue[c.head...].filter {
                if case let .message(_, from, _) = $0 { return from != member }
                return true
            }
            components[i].queue = Array(rest)
            components[i].head = 0
        }
    }

    // MARK: Delivery

    /// Takes the next event of the first component that has one (compatibility: one component).
    public mutating func next() -> (event: Event, recipients: [MemberID])? {
        for index in components.indices where canDeliver(index) {
            let deliveries = deliverNext(in: index)
            guard let first = deliveries.first else { return nil }
            return (first.event, deliveries.map(\.member))
        }
        return nil
    }

    /// Delivers the next event of component `index`, as each recipient receives it (empty when the
    /// event turned out to change nothing, such as a second join of the same member).
    public mutating func deliverNext(in index: Int) -> [Delivery] {
        guard canDeliver(index) else { return [] }
        delivered += 1
        let intent = components[index].pop()
        switch intent {
        case let .message(group, from, bytes):
            let event = Event.message(group: group, from: from, bytes: bytes)
            return components[index].members[group, default: []].map { Delivery(member: $0, event: event) }
        case let .join(group, member):
            var list = components[index].members[group, default: []]
            guard !list.contains(member) else { return [] }
            list.append(member)
            list.sort()
            components[index].members[group] = list
            let event = Event.change(group: group, MembershipChange(members: list, joined: [member], left: []))
            return list.map { Delivery(member: $0, event: event) }
        case let .leave(group, member, reason):
            var list = components[index].members[group, default: []]
            guard let at = list.firstIndex(of: member) else { return [] }
            list.remove(at: at)
            components[index].members[group] = list
            let event = Event.change(group: group, MembershipChange(members: list, joined: [], left: [.init(member, reason)]))
            // The change reaches the members after it, and (for their own leave) nobody else.
            return list.map { Delivery(member: $0, event: event) }
        case let .split(requested):
            return split(index, requested)
        case let .merge(marker):
            return merge(index, marker)
        }
    }

    private mutating func split(_ index: Int, _ requested: Set<UInt32>) -> [Delivery] {
        let side = requested.intersection(components[index].nodes)
        guard !side.isEmpty, side != components[index].nodes else { return [] }
        var other = Component(id: nextComponentID, nodes: side)
        nextComponentID += 1
        components[index].nodes.subtract(side)
        // The rest of the order goes with its sender.
        let rest = components[index].queue[components[index].head...]
        var stay: [Intent] = []
        for intent in rest {
            let node: UInt32?
            switch intent {
            case let .message(_, from, _): node = from.nodeID
            case let .join(_, member), let .leave(_, member, _): node = member.nodeID
            default: node = nil
            }
            if let node, side.contains(node) { other.queue.append(intent) } else { stay.append(intent) }
        }
        components[index].queue = stay
        components[index].head = 0
        var deliveries: [Delivery] = []
        for group in components[index].members.keys.sorted() {
            let all = components[index].members[group]!
            let mine = all.filter { !side.contains($0.nodeID) }
            let theirs = all.filter { side.contains($0.nodeID) }
            components[index].members[group] = mine
            other.members[group] = theirs
            guard !mine.isEmpty, !theirs.isEmpty else { continue }
            let toMine = Event.change(group: group, MembershipChange(members: mine, joined: [], left: theirs.map { .init($0, .nodeDown) }))
            let toTheirs = Event.change(group: group, MembershipChange(members: theirs, joined: [], left: mine.map { .init($0, .nodeDown) }))
            deliveries += mine.map { Delivery(member: $0, event: toMine) }
            deliveries += theirs.map { Delivery(member: $0, event: toTheirs) }
        }
        components.append(other)
        return deliveries
    }

    /// The other component whose next event is merge marker `marker`.
    private func partner(of index: Int, _ marker: UInt64) -> Int? {
        for i in components.indices where i != index && components[i].pending > 0 {
            if case let .merge(other) = components[i].queue[components[i].head], other == marker { return i }
        }
        return nil
    }

    private mutating func merge(_ index: Int, _ marker: UInt64) -> [Delivery] {
        guard let partner = partner(of: index, marker) else { return [] }
        _ = components[partner].pop()
        var merged = components[index]
        let other = components[partner]
        merged.nodes.formUnion(other.nodes)
        merged.queue = Array(components[index].queue[components[index].head...]) + Array(other.queue[other.head...])
        merged.head = 0
        var deliveries: [Delivery] = []
        for group in Set(merged.members.keys).union(other.members.keys).sorted() {
            let mine = merged.members[group] ?? []
            let theirs = other.members[group] ?? []
            let all = (mine + theirs).sorted()
            merged.members[group] = all
            guard !mine.isEmpty, !theirs.isEmpty else { continue }
            let toMine = Event.change(group: group, MembershipChange(members: all, joined: theirs, left: []))
            let toTheirs = Event.change(group: group, MembershipChange(members: all, joined: mine, left: []))
            deliveries += mine.map { Delivery(member: $0, event: toMine) }
            deliveries += theirs.map { Delivery(member: $0, event: toTheirs) }
        }
        components[index] = merged
        components.remove(at: partner)
        return deliveries.sorted { $0.member < $1.member }
    }
}
