import CMirrorLogSys

/// Opens syslog with ident "mirrorlogd" and the daemon facility.
public func mlsysOpenLog() {
    mlsys_openlog("mirrorlogd")
}
