import MirrorLogCore

/// `mirrorlogctl status` as text: one paragraph of `key:value` tokens for the node, then one per log
/// (in the style of `drbdsetup status`).
enum StatusText {
    static func render(_ report: StatusReport) -> String {
        let node = report.node
        var line = "node corosync:\(node.corosync)"
        if let member = node.member { line += " member:\(member)" }
        if let quorate = node.quorate { line += " quorate:\(quorate ? "yes" : "no") quorum-nodes:\(list(node.quorumNodes.map(String.init)))" }
        line += " fencing:\(node.fencing)"
        if let lock = node.dlmLock { line += " dlm-lock:\(lock)" }
        if !node.watchingNodes.isEmpty { line += " watching:\(list(node.watchingNodes.map(String.init)))" }
        var out = line + "\n"
        if let problem = node.dlmProblem { out += "  dlm-problem:\"\(problem)\"\n" }
        for log in report.logs {
            out += "\n\(log.uuid) type:\(log.type) state:\(log.state) luids:\(list(log.luids.map(String.init)))\n"
            var first = "  regions:\(log.regions) region-sectors:\(log.regionSectors) in-sync:\(log.inSync)/\(log.regions) resyncing:\(log.resyncing)"
            if let device = log.device { first += " device:\(device)" }
            out += first + "\n"
            guard log.type.hasPrefix("clustered") else { continue }
            var second = "  members:\(list(log.members))"
            if let slot = log.slot { second += " slot:\(slot)" }
            if let generation = log.generation { second += " generation:\(generation)" }
            second += " recovery:\(log.recovery)"
            if !log.waitingFor.isEmpty { second += " waiting-for:\(list(log.waitingFor))" }
            if let writer = log.diskWriter { second += " disk-writer:\(writer)" }
            second += " pending:\(log.pending) held:\(log.held)"
            out += second + "\n"
        }
        return out
    }

    private static func list(_ items: [String]) -> String { items.isEmpty ? "-" : items.joined(separator: ",") }
}
