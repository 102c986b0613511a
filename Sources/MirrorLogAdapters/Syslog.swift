internal import CMirrorLogSys

/// The system log (syslog(3)), ident "mirrorlogd", daemon facility.
public enum Syslog {
    /// Opens the log; call once before ``write(priority:_:)``.
    public static func open() {
        mlsys_openlog("mirrorlogd")
    }

    /// Writes one message at `priority` (LOG_ERR is 3, LOG_DEBUG 7).
    public static func write(priority: Int32, _ message: String) {
        mlsys_syslog(priority, message)
    }
}
