import MirrorLogCore

/// Bookkeeping of failed members: what each may still be writing, as one component sees it. The
/// invariants read it (``SimulationChecks/answer(_:to:from:replica:failed:regionCount:)``); only the
/// runner changes it.
extension ClusterSimulation {
    /// A failed member as one component sees it: the regions it may still be writing.
    struct FailureRecord: Sendable {
        var member: MemberID
        var component: Int
        var regions: Set<UInt64>
        /// The failed member's kernel is still alive (its writes and copy continue).
        var kernelAlive: Bool
        var incarnation: Int
        /// When the failure was delivered (the side that saw it later saw the member live longer).
        var step: Int
    }

    /// Live kernels keep adding to the regions their failed member may be writing.
    mutating func refreshRecords() {
        // A failed member back in its component's CPG membership (a merge), or a later daemon of its
        // node there (which takes its marks over), ends its record.
        records.removeAll { record in
            guard let index = cluster.cpg.components.firstIndex(where: { $0.id == record.component }) else { return true }
            return cluster.cpg.components[index].members.values.contains { list in
                list.contains { $0.nodeID == record.member.nodeID && $0.pid >= record.member.pid }
            }
        }
        for i in records.indices where records[i].kernelAlive {
            let node = nodes[Int(records[i].member.nodeID) - 1]
            guard node.up, let kernel = node.kernel, node.incarnation == records[i].incarnation else {
                records[i].regions.formUnion(deadWrites[records[i].incarnation] ?? [])
                records[i].kernelAlive = false
                continue
            }
            let index = Int(records[i].member.nodeID) - 1
            records[i].regions.formUnion(Set(kernel.markedWrites).subtracting(orphanedWrites[index] ?? []))
            if let copy = kernel.copying, orphanedResync[index] != copy { records[i].regions.insert(copy) }
        }
    }
}
