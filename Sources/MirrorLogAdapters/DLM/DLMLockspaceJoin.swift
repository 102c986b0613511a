internal import CDLM
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Creates or joins a DLM lockspace without blocking the event loop: the kernel's join waits for
/// dlm_controld (1-2 s, or longer while the cluster recovers), so it runs on a background thread,
/// and the outcome comes back as a value once ``fileDescriptor`` is readable (``takeOutcome()``).
public final class DLMLockspaceJoin: Sendable {
    /// Read end of the report pipe: poll it, then call ``takeOutcome()``.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    public let name: String
    private let fd: Int32
    private let writeFD: Int32
    private let outcome = Mutex<Result<UInt, Errno>?>(nil)

    /// Starts creating or joining lockspace `name`.
    public init(name: String) throws(Errno) {
        self.name = name
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        fd = fds[0]
        writeFD = fds[1]
        // The thread keeps this object (and its pipe) alive until it reported; if it cannot start,
        // deinit closes the pipe.
        try DetachedThread.start { [self] in finish(DLMLockspaceJoin.createOrOpen(name)) }
    }

    deinit {
        close(fd)
        close(writeFD)
    }

    /// The lockspace once the thread finished (nil before); an error names why it cannot be used.
    public func takeOutcome() -> Result<DLMLockspace, Errno>? {
        var byte: UInt8 = 0
        while read(fd, &byte, 1) > 0 {}
        guard let result = outcome.withLock({ $0 }) else { return nil }
        switch result {
        case let .success(bits):
            guard let handle = UnsafeMutableRawPointer(bitPattern: bits) else { return .failure(.badAddress) }
            do throws(Errno) {
                return .success(try DLMLockspace(name: name, handle: handle))
            } catch {
                return .failure(error)
            }
        case let .failure(error):
            return .failure(error)
        }
    }

    private func finish(_ result: Result<UInt, Errno>) {
        outcome.withLock { $0 = result }
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// Creates the lockspace, or opens it if it exists already. The handle travels as bits: the
    /// event loop's thread owns it from then on.
    private static func createOrOpen(_ name: String) -> Result<UInt, Errno> {
        if let handle = dlm_create_lockspace(name, 0o600) { return .success(UInt(bitPattern: handle)) }
        let createError = errno
        if createError == EEXIST, let handle = dlm_open_lockspace(name) { return .success(UInt(bitPattern: handle)) }
        return .failure(Errno(rawValue: createError))
    }
}
