internal import CMirrorLogSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The signals the daemon acts on, delivered through a signalfd so the event loop reads them as values.
public final class SignalSource {
    public enum Signal: Sendable, Equatable {
        case terminate, interrupt, dumpState, hangup
    }

    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    private let fd: Int32

    /// Blocks SIGTERM, SIGINT, SIGUSR1, SIGHUP (and ignores SIGPIPE) and opens the signalfd.
    public init() throws(Errno) {
        signal(SIGPIPE, SIG_IGN)
        let signals: [Int32] = [SIGTERM, SIGINT, SIGUSR1, SIGHUP]
        fd = try check(signals.withUnsafeBufferPointer { mlsys_signalfd($0.baseAddress, Int32($0.count)) })
    }

    deinit { close(fd) }

    /// The next pending signal, or nil.
    public func next() -> Signal? {
        while true {
            let n = mlsys_signalfd_read(fd)
            if n < 0 { return nil }
            switch n {
            case SIGTERM: return .terminate
            case SIGINT: return .interrupt
            case SIGUSR1: return .dumpState
            case SIGHUP: return .hangup
            default: continue
            }
        }
    }
}
