/// What `mirrorlogctl status` shows: one block for the node, one entry per log. A value built from
/// the service's state (``MirrorLogService/statusReport()``); the shell encodes it as JSON for the
/// control socket (schema in Docs/operations.md, "mirrorlogctl").
public struct StatusReport: Sendable, Codable, Equatable {
    /// Bumped when a field changes meaning or goes away (new fields may appear without a bump).
    public static let schemaVersion = 1

    public var schema = StatusReport.schemaVersion
    public var node: Node
    public var logs: [Log]

    /// The node: corosync, quorum and the DLM.
    public struct Node: Sendable, Codable, Equatable {
        /// `unused` (no clustered log so far), `connecting`, `connected` or `down`.
        public var corosync: String
        /// This daemon's member id in corosync (`nodeid/pid`), once connected.
        public var member: String?
        public var quorate: Bool?
        public var quorumNodes: [UInt32]
        /// `dlm` or `none` (`--no-fencing`).
        public var fencing: String
        /// This node's DLM lock: `not-taken`, `acquiring`, `held` or `unavailable`.
        public var dlmLock: String?
        /// Why the DLM cannot be used, when it cannot.
        public var dlmProblem: String?
        /// Nodes whose DLM lock this daemon waits on (their failed members are proven gone at the grant).
        public var watchingNodes: [UInt32]
    }

    /// One log (a clustered log with two instances during a table reload is one entry).
    public struct Log: Sendable, Codable, Equatable {
        public var uuid: String
        public var type: String
        public var luids: [UInt64]
        public var regions: UInt64
        public var regionSectors: UInt32
        public var inSync: UInt64
        /// Regions being resynced now (handed out as resync work).
        public var resyncing: Int
        /// `A` (the log device works) or `D` (a write failed); nil without a log device.
        public var device: String?
        /// Local logs: the lifecycle phase. Clustered logs: `joining`, `awaiting-state` or `active`.
        public var state: String
        public var members: [String]
        public var slot: UInt32?
        public var generation: UInt64?
        /// `none`, `waiting-for-fencing` (failed members not proven gone) or `done-sent`.
        public var recovery: String
        /// Failed members whose recovery waits for the DLM's proof.
        public var waitingFor: [String]
        public var diskWriter: String?
        /// Kernel requests waiting for their ordered answer.
        public var pending: Int
        /// Kernel requests held until a recovery is done (a failed node may be on the other side of a split).
        public var held: Int
    }

    /// `mdadm --detail --test` style: healthy, degraded (resyncing, device `D`, recovery waiting for
    /// fencing, inquorate, joining) or failed (clustered logs that cannot be served: no corosync, no DLM).
    public enum Health: Int32, Sendable {
        case healthy = 0
        case degraded = 1
        case failed = 2
    }

    public var health: Health {
        let clustered = logs.contains { $0.type.hasPrefix("clustered") }
        if clustered, node.corosync == "down" || node.dlmLock == "unavailable" { return .failed }
        if clustered, node.quorate == false { return .degraded }
        for log in logs where log.inSync < log.regions || log.device == "D" || log.recovery == "waiting-for-fencing" || log.held > 0 {
            return .degraded
        }
        if logs.contains(where: { $0.type.hasPrefix("clustered") && $0.state != "active" }) { return .degraded }
        return .healthy
    }
}

extension MirrorLogService {
    /// The status of the node and every log, for the control socket.
    public func statusReport() -> StatusReport {
        let node = cluster
        var dlmLock: String?
        var dlmProblem: String?
        if let node, node.fencing.mode == .dlm {
            dlmLock = node.fencing.ownLockName
            if case let .unavailable(reason) = node.fencing.own { dlmProblem = reason }
        }
        let corosyncText: String
        switch corosync {
        case .unused: corosyncText = "unused"
        case .connecting: corosyncText = "connecting"
        case .connected: corosyncText = "connected"
        case .down: corosyncText = "down"
        }
        let nodeBlock = StatusReport.Node(
            corosync: corosyncText, member: node.map { "\($0.me)" }, quorate: node?.quorum.quorate,
            quorumNodes: node?.quorum.nodes.sorted() ?? [], fencing: fencingMode == .dlm ? "dlm" : "none",
            dlmLock: dlmLock, dlmProblem: dlmProblem, watchingNodes: node?.fencing.watching.keys.sorted() ?? [])
        var logs: [StatusReport.Log] = engine.logs.values.sorted { ($0.uuid, $0.luid) < ($1.uuid, $1.luid) }.map { log in
            StatusReport.Log(
                uuid: log.uuid, type: log.arguments.logType.rawValue, luids: [log.luid], regions: log.regionCount,
                regionSectors: log.arguments.regionSize, inSync: log.syncCount, resyncing: log.recovering.count,
                device: log.disk.map { $0.failed ? "D" : "A" }, state: log.phase.rawValue, members: [], slot: nil,
                generation: nil, recovery: "none", waitingFor: [], diskWriter: nil, pending: 0, held: 0)
        }
        if let node {
            for log in node.logs.values.sorted(by: { $0.uuid < $1.uuid }) {
                let replica = log.replica
                var recovery = "none"
                var waiting: [String] = []
                if let replica, replica.recoveryPending {
                    waiting = node.awaitingProof(in: replica).map(\.description)
                    recovery = waiting.isEmpty ? "done-sent" : "waiting-for-fencing"
                }
                let state: String = switch log.status {
                case .joining: "joining"
                case .awaitingState: "awaiting-state"
                case .active: "active"
                }
                logs.append(StatusReport.Log(
                    uuid: log.uuid, type: log.arguments.logType.rawValue, luids: log.instances.keys.sorted(),
                    regions: log.arguments.regionCount, regionSectors: log.arguments.regionSize,
                    inSync: replica?.reportedSyncCount ?? 0, resyncing: replica?.log.recovering.count ?? 0,
                    device: log.arguments.logType.hasLogDevice ? ((replica?.log.disk?.failed ?? false) ? "D" : "A") : nil,
                    state: state, members: (replica?.members ?? log.lastMembers).map(\.description),
                    slot: replica?.slots[node.me], generation: replica?.generation, recovery: recovery, waitingFor: waiting,
                    diskWriter: replica?.diskWriter.map(\.description), pending: log.pending.count, held: log.heldForRecovery.count))
            }
        }
        return StatusReport(node: nodeBlock, logs: logs)
    }
}
