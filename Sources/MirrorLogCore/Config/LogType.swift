/// The log types the kernel can ask for in a `userspace` mirror table.
public enum LogType: String, Sendable, CaseIterable, CustomStringConvertible {
    /// In-memory log on one node.
    case core
    /// Log on a block device, one node.
    case disk
    /// In-memory log replicated over the cluster.
    case clusteredCore = "clustered-core"
    /// Log device shared by the cluster.
    case clusteredDisk = "clustered-disk"

    /// Whether the log keeps its state on a log device.
    public var hasLogDevice: Bool { self == .disk || self == .clusteredDisk }
    /// Whether the log is replicated through the cluster layer.
    public var isClustered: Bool { self == .clusteredCore || self == .clusteredDisk }
    public var description: String { rawValue }
}

/// How the log device is named in the table: a path, or `major:minor`.
public enum LogDeviceSpec: Sendable, Equatable, CustomStringConvertible {
    case path(String)
    case number(major: UInt32, minor: UInt32)

    public var description: String {
        switch self {
        case let .path(p): p
        case let .number(major, minor): "\(major):\(minor)"
        }
    }
}

/// The `[sync|nosync]` table argument.
public enum SyncMode: String, Sendable, Equatable {
    /// No argument: a disk log resumes from its on-disk state; a new core log resyncs everything.
    case `default`
    /// `sync`: resync everything, ignoring any on-disk state.
    case forceSync = "sync"
    /// `nosync`: the legs are declared identical; nothing is resynced.
    case noSync = "nosync"
}
