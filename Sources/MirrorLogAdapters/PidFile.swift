internal import CMirrorLogSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A pidfile held with an exclusive lock for the daemon's lifetime: a second instance fails to lock it.
public final class PidFile {
    public let path: String
    private let fd: Int32

    /// Why the pidfile could not be taken.
    public enum Failure: Error, CustomStringConvertible {
        case alreadyRunning(path: String, pid: String)
        case cannotOpen(path: String, Errno)

        public var description: String {
            switch self {
            case let .alreadyRunning(path, pid): "another mirrorlogd holds \(path)" + (pid.isEmpty ? "" : " (pid \(pid))")
            case let .cannotOpen(path, errno): "cannot open pidfile \(path): \(errno)"
            }
        }
    }

    /// Locks `path` and writes this process's pid into it.
    public init(path: String) throws(Failure) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .cannotOpen(path: path, Errno(rawValue: errno)) }
        let locked = mlsys_lock_exclusive_nonblocking(fd)
        guard locked == 0 else {
            let holder = readSmallFile(path)?.split(separator: "\n").first.map(String.init) ?? ""
            close(fd)
            if locked == -EWOULDBLOCK { throw .alreadyRunning(path: path, pid: holder) }
            throw .cannotOpen(path: path, Errno(rawValue: -locked))
        }
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.path = path
        self.fd = fd
    }

    /// Rewrites the pid (after daemonizing, the pid changed).
    public func refresh() {
        _ = ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// Removes the file and drops the lock.
    public func release() {
        unlink(path)
        close(fd)
    }
}
