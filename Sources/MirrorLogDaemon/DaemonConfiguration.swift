import MirrorLogCore

/// How the daemon was asked to run.
public struct DaemonConfiguration: Sendable {
    /// Stay in the foreground and log to stderr (`-f`). Otherwise detach and log to syslog.
    public var foreground: Bool
    /// Log every request and reply.
    public var debug: Bool
    /// The pidfile that keeps a single instance.
    public var pidfilePath: String
    /// Where device nodes for `major:minor` log devices are made when /dev has none.
    public var runtimeDirectory: String
    /// Second SIGTERM/SIGINT within this many seconds exits even with active logs.
    public var forcedExitWindowSeconds: Int
    /// Take kernel requests from this Unix socket instead of the netlink connector (tests and replays).
    public var kernelSocketPath: String?
    /// At most this many cluster operations per CPG message (nil: unlimited). For benchmarks.
    public var clusterOperationsPerMessage: Int?
    /// How a failed member is proven gone before its regions are recovered: the DLM barrier, or
    /// (`--no-fencing`) corosync's quorum view alone.
    public var fencing: FencingMode = .dlm
    /// The control socket for `mirrorlogctl` (default: `<runtimeDirectory>/ctl.sock`).
    public var controlSocketPath: String?

    public init(foreground: Bool = false, debug: Bool = false, pidfilePath: String = "/run/mirrorlogd.pid",
                runtimeDirectory: String = "/run/mirrorlogd", forcedExitWindowSeconds: Int = 10, kernelSocketPath: String? = nil) {
        self.foreground = foreground
        self.debug = debug
        self.pidfilePath = pidfilePath
        self.runtimeDirectory = runtimeDirectory
        self.forcedExitWindowSeconds = forcedExitWindowSeconds
        self.kernelSocketPath = kernelSocketPath
    }
}
