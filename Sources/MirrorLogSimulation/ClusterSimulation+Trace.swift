import MirrorLogCore

/// The trace of a run: one line per step for replays, and the dumps of a failure.
extension ClusterSimulation {

    /// The state of every node, daemon and kernel, for failure reports.
    public func dump() -> [String] {
        var lines: [String] = []
        lines.append("components: \(cluster.cpg.components.map { "c\($0.id)=\($0.nodes.sorted()) pending=\($0.pending) listed=\((listed[$0.id] ?? []).sorted())" }.joined(separator: " "))")
        for node in nodes {
            var line = "node \(node.id): \(node.up ? "up" : "down") daemon=\(node.daemon.map { "\($0)" } ?? "-")"
            if let kernel = node.kernel {
                line += " kernel(luid \(kernel.luid) \(kernel.phase.rawValue) in-flight=\(kernel.inFlight.keys.sorted().map { "\($0):\(kernel.inFlight[$0]!.type)\(kernel.inFlight[$0]!.abandoned ? "(abandoned)" : "")" }) writing=\(kernel.markedWrites) resync=\(kernel.resyncRegion.map { "\($0)" } ?? "-") hint=\(kernel.inSyncHint) idle=\(kernel.isIdle))"
            }
            lines.append(line)
            if let daemon = node.daemon, let d = cluster.nodes[daemon] {
                lines.append("  ordering=\(d.orderingStatus) members=\(d.orderingMembers) quorum=\(d.quorum.quorate) \(d.quorum.nodes.sorted()) outbound=\(cluster.hasOutbound(daemon))")
                for text in d.dumpLines() { lines.append("  " + text) }
                if let replica = d.logs[logKey]?.replica {
                    lines.append("  replica members=\(replica.members) synced=\(replica.synced.sorted()) failed=\(replica.failed) pending=\(replica.recoveryPending) recovering=\(replica.log.recovering.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }) marks=\(replica.log.marks.holders.map { h in "\(h.member):\((0 ..< replica.regionCount).filter { h.regions[$0] })" })")
                }
            }
        }
        lines.append("failure records: \(records.map { "\($0.member)@c\($0.component)\($0.kernelAlive ? "(alive)" : ""):\($0.regions.sorted())" })")
        return lines
    }

    mutating func note(_ line: @autoclosure () -> String) {
        guard options.trace else { return }
        trace.append("[\(step) t=\(now)] " + line())
    }

    /// The fields in which two replicas differ.
    static func difference(_ a: ReplicatedLog, _ b: ReplicatedLog) -> String {
        func regions(_ bitmap: Bitmap) -> [UInt64] { (0 ..< bitmap.count).filter { bitmap[$0] } }
        func marks(_ r: ReplicatedLog) -> [String] {
            r.log.marks.holders.filter { $0.regions.firstIndex(of: true, from: 0) < r.regionCount }.sorted { $0.member < $1.member }.map { "\($0.member):\(regions($0.regions))" }
        }
        var out: [String] = []
        func compare<T: Equatable>(_ name: String, _ x: T, _ y: T) { if x != y { out.append("\(name) \(x) vs \(y)") } }
        compare("members", a.members, b.members)
        compare("synced", a.synced.sorted(), b.synced.sorted())
        compare("unsynced", a.unsyncedAge.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }, b.unsyncedAge.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" })
        compare("slots", a.slots.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }, b.slots.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" })
        compare("failed", a.failed, b.failed)
        compare("generation", a.generation, b.generation)
        compare("pending", a.recoveryPending, b.recoveryPending)
        compare("priority", a.priority, b.priority)
        compare("sync", regions(a.log.sync), regions(b.log.sync))
        compare("clean", regions(a.log.clean), regions(b.log.clean))
        compare("marks", marks(a), marks(b))
        compare("recovering", a.log.recovering.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }, b.log.recovering.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" })
        compare("flush", "\(a.flushNumber)/\(a.ackedFlush)", "\(b.flushNumber)/\(b.ackedFlush)")
        compare("needsDiskLoad", a.needsDiskLoad, b.needsDiskLoad)
        compare("diskFailed", a.log.disk?.failed, b.log.disk?.failed)
        compare("dirtyBlocks", a.log.disk.map { regions($0.dirtyBlocks) }, b.log.disk.map { regions($0.dirtyBlocks) })
        compare("suspects", a.suspects.map(regions), b.suspects.map(regions))
        return out.isEmpty ? "(fields equal; resync cursor?)" : out.joined(separator: "; ")
    }

    func summary(_ member: MemberID) -> String {
        cluster.nodes[member]?.dumpLines().joined(separator: " ") ?? "-"
    }

    static func describe(_ message: ClusterMessage) -> String {
        switch message {
        case let .operations(batches): batches.flatMap(\.entries).map { "\($0.operation)#\($0.token)" }.joined(separator: ", ")
        case let .snapshotChunk(chunk): "snapshot chunk \(chunk.index + 1)/\(chunk.count) from \(chunk.donor) to \(chunk.recipients.map(\.member))"
        case let .census(logs, members, boot): "census of \(logs.count) log(s) for \(members), boot \(boot)"
        }
    }

    static func describe(_ payload: RequestPayload) -> String {
        switch payload {
        case .none: ""
        case let .constructor(text): "'\(text.text)'\(text.isNULTerminated ? " (reconnect)" : "")"
        case let .region(r): "\(r)"
        case let .regions(list): "\(Array(list))"
        case let .regionSync(r, inSync): "\(r) \(inSync ? "in sync" : "OUT of sync")"
        }
    }

    static func describe(_ reply: Reply) -> String {
        reply.error != 0 ? "error \(reply.error)" : "\(reply.payload)"
    }
}
