import MirrorLogAdapters
import MirrorLogCore
import SystemPackage

/// The daemon's corosync handles: the quorum monitor and the one CPG handle of the ordering group.
/// It carries out the service's cluster directives and turns corosync's callbacks into values; it
/// decides nothing. The only state it keeps is mechanical: multicasts that flow control refused,
/// kept in order and sent before anything newer.
final class CorosyncConnection {
    private let quorum: QuorumMonitor
    private var group: CPGGroup?
    /// This daemon in corosync (node id and pid).
    let me: MemberID
    /// Messages refused by flow control, in order.
    private var backlog: [[UInt8]] = []
    /// Multicasts sent (for dumps and the benchmark).
    private(set) var multicasts = 0

    /// What corosync reported.
    enum Event {
        case quorum(QuorumView)
        case delivered(from: MemberID, [UInt8])
        case membershipChanged(MembershipChange)
    }

    /// Descriptors to poll.
    enum Source {
        case quorum
        case group
    }

    /// Connects without blocking the loop (TRY_AGAIN is retried for a few milliseconds at most).
    init() throws(CorosyncError) {
        quorum = try QuorumMonitor(patience: .eventLoop)
        do {
            let handle = try CPGGroup(name: ClusterNode.orderingGroup, patience: .eventLoop)
            me = handle.localMember
            group = handle
        } catch {
            quorum.close()
            throw error
        }
    }

    /// What votequorum said at connect time.
    var quorumView: QuorumView { QuorumView(quorate: quorum.isQuorate, nodes: quorum.nodes) }

    /// Multicasts held back by flow control.
    var backlogCount: Int { backlog.count }

    var pollSources: [(fd: FileDescriptor, source: Source)] {
        var list: [(FileDescriptor, Source)] = [(quorum.fileDescriptor, .quorum)]
        if let group { list.append((group.fileDescriptor, .group)) }
        return list
    }

    /// Reads what corosync has for `source`.
    func dispatch(_ source: Source) throws(CorosyncError) -> [Event] {
        switch source {
        case .quorum:
            try quorum.dispatch()
            return [.quorum(quorumView)]
        case .group:
            guard let group else { return [] }
            return try group.dispatch().map { event in
                switch event {
                case let .delivered(from, message): .delivered(from: from, message)
                case let .membershipChanged(change): .membershipChanged(change)
                }
            }
        }
    }

    /// `cpg_join` of the ordering group; false if corosync said TRY_AGAIN.
    func join() throws(CorosyncError) -> Bool {
        let handle: CPGGroup
        if let group {
            handle = group
        } else {
            handle = try CPGGroup(name: ClusterNode.orderingGroup, patience: .eventLoop)
            group = handle
        }
        return try handle.tryJoin()
    }

    /// Leaves the ordering group: one `cpg_leave` attempt, then the handle is closed (if corosync
    /// was busy, the others see this member go down rather than leave). Returns whether corosync
    /// took the leave.
    func leave() -> Bool {
        guard let group else { return true }
        let accepted = (try? group.tryLeave()) == true
        group.close()
        self.group = nil
        backlog.removeAll()
        return accepted
    }

    /// Multicasts `bytes` in order after the backlog; flow control keeps it for ``retryBacklog()``.
    func multicast(_ bytes: [UInt8]) throws(CorosyncError) {
        guard backlog.isEmpty else {
            backlog.append(bytes)
            return
        }
        guard let group else { return }
        switch try group.multicast(bytes) {
        case .sent: multicasts += 1
        case .flowControlled: backlog.append(bytes)
        }
    }

    /// Sends what flow control held back, in order, until corosync refuses again.
    func retryBacklog() throws(CorosyncError) {
        guard let group else {
            backlog.removeAll()
            return
        }
        while let first = backlog.first {
            guard try group.multicast(first) == .sent else { return }
            multicasts += 1
            backlog.removeFirst()
        }
    }

    func close() {
        group?.close()
        group = nil
        quorum.close()
        backlog.removeAll()
    }
}
