import MirrorLogCore

/// A broken invariant and what shows it.
public struct SimulationFinding: Sendable, Equatable {
    public var invariant: SimulationInvariant
    public var message: String

    init(_ invariant: SimulationInvariant, _ message: String) {
        self.invariant = invariant
        self.message = message
    }
}

/// The invariants as pure functions of what the runner observed: each returns the first finding, or
/// nil. The runner keeps its bookkeeping (failure records, orphaned work) apart and hands it in.
enum SimulationChecks {
    /// Members of one component that count each other as members of the log hold the same state at
    /// every delivery index (they delivered the same prefix).
    static func replicasAgree(_ views: [ClusterSimulation.ReplicaView], delivered: Int) -> SimulationFinding? {
        var digests: [MemberID: UInt64] = [:]
        for view in views { digests[view.member] = ReplicaSnapshot.digest(view.replica) }
        for a in views {
            for b in views where a.member < b.member && a.component == b.component
                && a.replica.members.contains(b.member) && b.replica.members.contains(a.member) && digests[a.member] != digests[b.member] {
                return SimulationFinding(.replicasAgree, "replicas of \(a.member) and \(b.member) differ after delivery \(delivered): \(ClusterSimulation.difference(a.replica, b.replica))")
            }
        }
        return nil
    }

    /// Each replica is consistent, and no region that a live kernel marked and writes is clean in it.
    static func marksNeverClean(_ views: [ClusterSimulation.ReplicaView], marked: [(node: UInt32, region: UInt64)]) -> SimulationFinding? {
        for view in views {
            let log = view.replica.log
            if log.syncCount != log.sync.popCount {
                return SimulationFinding(.markedNeverClean, "\(view.member): sync count \(log.syncCount) but \(log.sync.popCount) regions in sync")
            }
            for holder in log.marks.holders {
                var region = holder.regions.firstIndex(of: true, from: 0)
                while region < log.regionCount {
                    if log.clean[region] {
                        return SimulationFinding(.markedNeverClean, "\(view.member): region \(region) is clean although \(holder.member) holds a mark on it")
                    }
                    region = holder.regions.firstIndex(of: true, from: region + 1)
                }
            }
            for (node, region) in marked where log.clean[region] {
                return SimulationFinding(.markedNeverClean, "region \(region) is being written by node \(node) (marked), but \(view.member)'s replica says clean")
            }
        }
        return nil
    }

    /// The log device records every region being written as not clean.
    static func deviceRecordsMarks(_ image: [UInt8], marked: [(node: UInt32, region: UInt64)]) -> SimulationFinding? {
        for (node, region) in marked {
            let byte = DiskLogFormat.bitmapOffset + Int(region / 8)
            if byte < image.count, image[byte] & (1 << (region % 8)) != 0 {
                return SimulationFinding(.markedNeverClean, "region \(region) is being written by node \(node), but the log device records it clean")
            }
        }
        return nil
    }

    /// At most one node resyncs a region at a time (`resyncing`: node and region, orphaned copies left out).
    static func singleResyncer(_ resyncing: [(node: UInt32, region: UInt64)]) -> SimulationFinding? {
        var holder: [UInt64: UInt32] = [:]
        for (node, region) in resyncing {
            if let other = holder[region] { return SimulationFinding(.singleResyncer, "nodes \(other) and \(node) both resync region \(region)") }
            holder[region] = node
        }
        return nil
    }

    /// When `node` is fenced, every region its kernel was writing (`writes`) is known to each quorate
    /// replica elsewhere: held as a mark of one of the node's members (resynced after done) or out of
    /// sync. A region missing there was written behind the survivors' back (answered during a split,
    /// or after a done that came before the fencing) and would never be resynced.
    static func fencedWritesKnown(_ survivors: [ClusterSimulation.ReplicaView], node: UInt32, writes: Set<UInt64>) -> SimulationFinding? {
        for view in survivors {
            let log = view.replica.log
            let holders = log.marks.holders.filter { $0.member.nodeID == node }
            for region in writes.sorted() where region < log.regionCount && log.sync[region] {
                if holders.contains(where: { $0.regions[region] }) { continue }
                return SimulationFinding(.failedMemberRegions, "node \(node) was fenced or rebooted while writing region \(region), which \(view.member)'s replica neither holds for it nor resyncs")
            }
        }
        return nil
    }

    /// One answer of `member` against the regions failed members may still be writing (`failed`:
    /// the records of its component, others than itself) and its replica.
    static func answer(_ reply: Reply, to request: SimulatedKernel.Request, from member: MemberID, replica: ReplicatedLog,
                       failed: [ClusterSimulation.FailureRecord], regionCount: UInt64) -> SimulationFinding? {
        switch (request.type, reply.payload, request.payload) {
        case let (.getResyncWork, .resyncWork(region?), _):
            if let record = failed.first(where: { $0.regions.contains(region) }) {
                return SimulationFinding(.failedMemberRegions, "\(member) handed out region \(region) as resync work while failed member \(record.member) (not fenced) may be writing it")
            }
        case let (.isRemoteRecovering, .remoteRecovering(recovering, hint), .region(region)):
            if !recovering, let record = failed.first(where: { $0.regions.contains(region) }) {
                return SimulationFinding(.failedMemberRegions, "\(member) answered region \(region) not recovering while failed member \(record.member) (not fenced) may be writing it")
            }
            if let record = failed.first(where: { $0.regions.contains { $0 < hint } }) {
                return SimulationFinding(.failedMemberRegions, "\(member) answered in_sync_hint \(hint), past region \(record.regions.min() ?? 0) that failed member \(record.member) (not fenced) may be writing")
            }
            let lowest = replica.log.sync.firstIndex(of: false, from: 0)
            if hint > lowest {
                return SimulationFinding(.inSyncHint, "\(member) answered in_sync_hint \(hint), past region \(lowest) that needs resync")
            }
        case let (.getSyncCount, .count(count), _):
            if count == regionCount, let record = failed.first {
                return SimulationFinding(.failedMemberRegions, "\(member) answered sync count \(count) (the kernel then takes in_sync_hint = region count) while failed member \(record.member) (not fenced) may be writing regions \(record.regions.sorted())")
            }
        default:
            break
        }
        return nil
    }
}
