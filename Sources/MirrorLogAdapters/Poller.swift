import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// poll(2) over a fixed set of descriptors (nil: a slot that is never ready).
public struct Poller {
    private var fds: [pollfd]

    public init(_ descriptors: [FileDescriptor?]) {
        fds = descriptors.map { pollfd(fd: $0?.rawValue ?? -1, events: Int16(POLLIN), revents: 0) }
    }

    /// Waits up to `timeoutMilliseconds` (-1: forever) and returns the indices of readable fds.
    public mutating func wait(timeoutMilliseconds: Int32) -> [Int] {
        let n = poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        guard n > 0 else { return [] }
        var ready: [Int] = []
        for i in fds.indices where fds[i].revents != 0 {
            ready.append(i)
            fds[i].revents = 0
        }
        return ready
    }
}
