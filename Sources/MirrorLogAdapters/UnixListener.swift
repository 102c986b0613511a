import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A listening Unix `SOCK_SEQPACKET` socket at `path`, mode 0600 (root only), replacing a stale
/// socket file there. Returns the descriptor. Shared by the test kernel transport and the control
/// socket.
func listenOnUnixSocket(path: String, nonBlocking: Bool, backlog: Int32) throws(Errno) -> Int32 {
    var type = Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
    let fd = socket(AF_UNIX, type, 0)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    guard var address = unixAddress(path) else {
        close(fd)
        throw Errno(rawValue: ENAMETOOLONG)
    }
    unlink(path)
    // Never group- or world-accessible, not even between bind and chmod.
    let mask = umask(0o177)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    umask(mask)
    guard bound == 0, chmod(path, 0o600) == 0, listen(fd, backlog) == 0 else {
        let error = Errno(rawValue: errno)
        close(fd)
        throw error
    }
    return fd
}

/// A connected Unix `SOCK_SEQPACKET` socket to `path` (a client of a socket made by
/// ``listenOnUnixSocket(path:nonBlocking:backlog:)``), with send and receive bounded by `timeout` seconds.
public func connectToUnixSocket(path: String, timeout: Int) throws(Errno) -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw Errno(rawValue: errno) }
    var bound = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, socklen_t(MemoryLayout<timeval>.size))
    guard var address = unixAddress(path) else {
        close(fd)
        throw Errno(rawValue: ENAMETOOLONG)
    }
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard connected == 0 else {
        let error = Errno(rawValue: errno)
        close(fd)
        throw error
    }
    return fd
}

/// The socket address of `path`; nil if the path does not fit.
private func unixAddress(_ path: String) -> sockaddr_un? {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, byte) in bytes.enumerated() { raw[i] = byte }
    }
    return address
}
