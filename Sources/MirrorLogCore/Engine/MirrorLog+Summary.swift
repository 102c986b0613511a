extension MirrorLog {
    /// A one-line summary of the log's state for SIGUSR1 dumps and the operator.
    public var summary: String {
        var parts = [
            "luid=\(luid)",
            "type=\(arguments.logType)",
            "phase=\(phase.rawValue)",
            "regions=\(regionCount)x\(arguments.regionSize)",
            "in_sync=\(syncCount)/\(regionCount)",
            "resyncing=\(recovering.count)",
        ]
        let holders = marks.holders.map { "\($0.member):\($0.regions.popCount)" }
        parts.append("marks=[\(holders.joined(separator: ","))]")
        if let disk {
            parts.append("device=\(disk.attachment.deviceNumber)")
            parts.append("device_state=\(disk.failed ? "D" : "A")")
            parts.append("dirty_blocks=\(disk.dirtyBlocks.popCount)")
        }
        return parts.joined(separator: " ")
    }
}

/// The short form of a uuid used in log lines: its last 8 characters (LVM uuids share a long prefix).
public func shortUUID(_ uuid: String) -> String {
    uuid.count <= 8 ? uuid : String(uuid.suffix(8))
}
