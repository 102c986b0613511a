import MirrorLogCore

/// The DLM as the fencing barrier uses it (REFERENCE.md section 4), one lock per node:
///
/// - a daemon takes its node's lock (EX, persistent) and keeps it; if it dies, the lock stays as
///   an orphan that the node's next daemon adopts;
/// - a peer's request on a node's lock is granted only once the lock is free: its node was fenced or
///   rebooted (its locks purged), or the holder let go; a node that is down and not fenced keeps it
///   forever;
/// - a granted request blocks the node's next daemon until the peer gives it back.
///
/// Grants reach the daemons as events in a queue, so the simulation delivers them before or after
/// the configuration change that reports the failure.
public struct SimulatedDLM: Sendable {
    /// Who holds a node's lock.
    public enum Holder: Sendable, Equatable {
        case daemon(MemberID)
        /// Left by a daemon that died on a live node (or on a node not fenced yet).
        case orphan
    }

    public private(set) var holders: [UInt32: Holder] = [:]
    /// Queued requests of peers, per node lock.
    public private(set) var waiting: [UInt32: Set<MemberID>] = [:]
    /// Granted requests not given back yet, per node lock.
    public private(set) var granted: [UInt32: Set<MemberID>] = [:]
    /// Daemons waiting to take their own node's lock.
    public private(set) var acquiring: [UInt32: MemberID] = [:]
    /// Whether there is a DLM at all (no dlm_controld: every lock request is refused).
    public var available = true
    /// Whether it answers at all (false: a lockspace join that hangs, as while dlm_controld waits).
    public var answers = true
    /// Events not delivered yet, in order.
    public internal(set) var events: [(member: MemberID, event: DLMEvent)] = []

    public init() {}

    /// `member` asks for its node's lock.
    mutating func acquire(_ member: MemberID) {
        guard answers else { return }
        guard available else {
            events.append((member, .unavailable("no dlm_controld (simulated)")))
            return
        }
        let node = member.nodeID
        if case .daemon = holders[node] { return }
        acquiring[node] = member
        tryAcquire(node)
    }

    /// `member` queues a request on `node`'s lock.
    mutating func watch(_ node: UInt32, by member: MemberID) {
        if holders[node] == nil, acquiring[node] == nil {
            granted[node, default: []].insert(member)
            events.append((member, .granted(node: node)))
        } else {
            waiting[node, default: []].insert(member)
        }
    }

    /// `member` gives back its granted request on `node`'s lock.
    mutating func release(_ node: UInt32, by member: MemberID) {
        granted[node]?.remove(member)
        tryAcquire(node)
    }

    /// `member`'s process died: its own lock becomes an orphan, its requests go away.
    mutating func processDied(_ member: MemberID) {
        if holders[member.nodeID] == .daemon(member) { holders[member.nodeID] = .orphan }
        if acquiring[member.nodeID] == member { acquiring[member.nodeID] = nil }
        for node in Array(waiting.keys) { waiting[node]?.remove(member) }
        for node in Array(granted.keys) {
            granted[node]?.remove(member)
            tryAcquire(node)
        }
        events.removeAll { $0.member == member }
    }

    /// `node` was fenced or rebooted: its locks are purged and the requests on them granted.
    mutating func purge(_ node: UInt32) {
        guard holders[node] != nil else { return }
        holders[node] = nil
        for member in (waiting.removeValue(forKey: node) ?? []).sorted() {
            granted[node, default: []].insert(member)
            events.append((member, .granted(node: node)))
        }
        tryAcquire(node)
    }

    private mutating func tryAcquire(_ node: UInt32) {
        guard let member = acquiring[node], granted[node]?.isEmpty ?? true else { return }
        let adopted = holders[node] == .orphan
        guard holders[node] == nil || adopted else { return }
        acquiring[node] = nil
        holders[node] = .daemon(member)
        events.append((member, .acquired(adoptedOrphan: adopted)))
    }
}
