import CMirrorLogSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Suspends and resumes a mirror's dm device on a background thread, to restart the kernel's recovery
/// of a log. The thread reports back through a pipe that the event loop polls.
public final class DeviceMapperControl {
    /// Read end of the report pipe: poll it, then call ``readReports()``.
    public let fileDescriptor: Int32
    private let writeFD: Int32

    public init() throws(Errno) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        fileDescriptor = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(fileDescriptor)
        close(writeFD)
    }

    /// Starts the suspend and resume of the dm device whose mirror uses the log `uuid`.
    public func restartRecovery(ofLog uuid: String) throws(Errno) {
        _ = try check(mlsys_dm_restart_recovery_async(uuid, writeFD))
    }

    /// The lines the background threads reported ("ok <uuid> <device>" or "error <uuid>: <what>").
    public func readReports() -> [String] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, 4096) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0 ..< n])
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}
