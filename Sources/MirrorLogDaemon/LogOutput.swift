import MirrorLogAdapters
import Logging
import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

/// Writes log lines to stderr (foreground, or journald via systemd's stderr) or to syslog (detached).
/// Each line carries the log's short uuid when the message is about one log.
public struct MirrorLogHandler: LogHandler {
    public enum Destination: Sendable { case standardError, syslog }

    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let destination: Destination
    private let label: String

    public init(label: String, destination: Destination, level: Logger.Level) {
        self.label = label
        self.destination = destination
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = ""
        if let log = merged.removeValue(forKey: "log") { line += "[\(log)] " }
        line += "\(event.message)"
        if !merged.isEmpty {
            line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        switch destination {
        case .standardError:
            let text = "\(Self.levelTag(event.level)) \(line)\n"
            // One write(2) per line keeps lines whole when several processes share stderr.
            var bytes = Array(text.utf8)
            _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        case .syslog:
            Syslog.write(priority: Self.syslogPriority(event.level), line)
        }
    }

    static func levelTag(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    static func syslogPriority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }
}

extension Logger {
    /// Writes a notice of the core at its level, tagged with its log's short uuid.
    func report(_ notice: Notice) {
        var metadata: Logger.Metadata = [:]
        if let uuid = notice.uuid { metadata["log"] = "\(shortUUID(uuid))" }
        switch notice.level {
        case .debug: debug("\(notice.message)", metadata: metadata)
        case .info: info("\(notice.message)", metadata: metadata)
        case .warning: warning("\(notice.message)", metadata: metadata)
        case .error: error("\(notice.message)", metadata: metadata)
        }
    }
}
