/// How a failed member is proven unable to write before its recovery may complete (recover_done).
public enum FencingMode: Sendable, Equatable {
    /// The DLM barrier (the default): every daemon holds its node's lock in the DLM for its lifetime;
    /// the DLM grants a peer's queued request on it only once the holder released it cleanly or its
    /// node was fenced and its locks purged.
    case dlm
    /// No fencing (an explicit option): a failed member counts as stopped once votequorum no longer
    /// lists its node. A node cut off or hung may still be writing the regions the others resync.
    case unfenced
}

/// What the shell does in the DLM for the barrier (lockspace `mirrorlogd`, one lock per node).
public enum DLMRequest: Sendable, Equatable {
    /// Join the lockspace if needed and take this node's lock (EX, persistent), adopting the orphan
    /// a previous daemon of this node left; report ``DLMEvent/acquired(adoptedOrphan:)`` or
    /// ``DLMEvent/unavailable(_:)``.
    case acquireNodeLock
    /// Queue a request on `node`'s lock; report ``DLMEvent/granted(node:)`` when the DLM grants it.
    case watchNode(UInt32)
    /// Give back the granted request on `node`'s lock (its next daemon needs the lock).
    case releaseNode(UInt32)
}

/// What the DLM reported to the shell.
public enum DLMEvent: Sendable, Equatable {
    /// This node's lock is held (`adoptedOrphan`: a previous daemon of this node left it behind).
    case acquired(adoptedOrphan: Bool)
    /// The DLM cannot be used (no dlm_controld, no lockspace, the lock refused); the reason.
    case unavailable(String)
    /// Our request on `node`'s lock was granted: every daemon of that node we knew is gone.
    case granted(node: UInt32)
}

/// The DLM barrier's bookkeeping in one daemon (REFERENCE.md section 4). Pure.
///
/// A daemon takes its own node lock before it joins the ordering group, so a peer that sees one of
/// its members finds the lock held. For every other node with a member this daemon knows of (in the
/// ordering group, or failed in a log's state) it keeps one queued request. A grant proves that every
/// member of that node seen before it is gone: the holder let go, or its node was fenced and its
/// locks purged. The grant is given back at once, so the node's next daemon can take the lock; the
/// next member of that node seen is watched with a new request.
public struct FencingBarrier: Sendable {
    public let mode: FencingMode
    /// This daemon's own node lock.
    public internal(set) var own: OwnLock
    /// Nodes with a queued request, and the members of each seen while it was queued.
    public internal(set) var watching: [UInt32: Set<MemberID>] = [:]
    /// Members the DLM proved gone.
    public internal(set) var proven: Set<MemberID> = []

    /// Where this daemon's own node lock is.
    public enum OwnLock: Sendable, Equatable {
        /// Not asked for yet (or not used: ``FencingMode/unfenced``).
        case idle
        /// Asked for; the outcome comes back as a ``DLMEvent``.
        case acquiring
        /// Held (for the rest of the daemon's life).
        case held
        /// The DLM could not be used, and why; the next clustered constructor asks again.
        case unavailable(String)
    }

    public init(mode: FencingMode) {
        self.mode = mode
        own = .idle
    }

    /// This node's lock for status output: `not-taken`, `acquiring`, `held` or `unavailable`.
    public var ownLockName: String {
        switch own {
        case .idle: "not-taken"
        case .acquiring: "acquiring"
        case .held: "held"
        case .unavailable: "unavailable"
        }
    }

    /// Whether clustered logs may be served now (the own lock is held, or the DLM is not used).
    public var ready: Bool { mode == .unfenced || own == .held }

    /// Queues a request for every node of `known` (other than ours) not watched yet, and adds the
    /// members to the watch of their node. Nothing before our own lock is held.
    mutating func watch(_ known: some Sequence<MemberID>, me: MemberID) -> [Directive] {
        guard mode == .dlm, own == .held else { return [] }
        var out: [Directive] = []
        for member in known where member.nodeID != me.nodeID && !proven.contains(member) {
            if watching[member.nodeID] == nil {
                watching[member.nodeID] = [member]
                out.append(.dlm(.watchNode(member.nodeID)))
            } else {
                watching[member.nodeID]?.insert(member)
            }
        }
        return out
    }

    /// Our request on `node`'s lock was granted: the members seen of it are gone. The grant goes back.
    mutating func granted(node: UInt32) -> [Directive] {
        if let seen = watching.removeValue(forKey: node) { proven.formUnion(seen) }
        return [.dlm(.releaseNode(node))]
    }

    /// Forgets proofs about members nobody refers to any more.
    mutating func forget(allBut referenced: Set<MemberID>) {
        if proven.contains(where: { !referenced.contains($0) }) { proven.formIntersection(referenced) }
    }

    /// Whether failed `member` can no longer write: the barrier proved it gone (``FencingMode/dlm``),
    /// or votequorum no longer lists its node (``FencingMode/unfenced``). (A daemon of its node with
    /// another boot id proves it too; the replicated state sees that itself, ``ReplicatedLog/retire(_:)``.)
    func isGone(_ member: MemberID, quorum: QuorumView) -> Bool {
        switch mode {
        case .dlm: return proven.contains(member)
        case .unfenced: return !quorum.nodes.contains(member.nodeID)
        }
    }
}
