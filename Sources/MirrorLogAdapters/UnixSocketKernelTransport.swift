import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A kernel transport for tests and replays: a Unix `SOCK_SEQPACKET` socket that carries exactly the
/// datagrams of the netlink connector (nlmsghdr + cn_msg + dm_ulog_request + payload), one per packet.
///
/// One client at a time plays the kernel; a second connection waits until the first closes. The socket
/// is made mode 0600, so only root can play the kernel.
public final class UnixSocketKernelTransport: KernelTransport {
    public let path: String
    private let listener: Int32
    private var connection: Int32 = -1

    /// The fd to poll: the connection when a client is connected, the listener otherwise.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: connection >= 0 ? connection : listener) }
    public let portID: UInt32 = 0

    /// Listens on `path` (an existing socket file there is replaced).
    public init(path: String) throws(Errno) {
        listener = try listenOnUnixSocket(path: path, nonBlocking: false, backlog: 4)
        self.path = path
    }

    deinit {
        if connection >= 0 { close(connection) }
        close(listener)
        unlink(path)
    }

    /// Accepts a waiting client, or receives one packet from the connected one. Returns nil when there
    /// is nothing to hand over (a client arrived or left, or nothing is waiting).
    public func receive(into buffer: inout [UInt8]) throws(Errno) -> ReceivedDatagram? {
        if connection < 0 {
            let fd = accept(listener, nil, nil)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                connection = fd
            }
            return nil
        }
        let capacity = buffer.count
        let n = buffer.withUnsafeMutableBytes { recv(connection, $0.baseAddress, capacity, Int32(MSG_DONTWAIT)) }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return nil }
            let error = Errno(rawValue: errno)
            dropConnection()
            throw error
        }
        if n == 0 {
            dropConnection()
            return nil
        }
        return ReceivedDatagram(byteCount: n, senderPortID: 0, fromKernel: true)
    }

    public func send(_ bytes: [UInt8]) throws(Errno) {
        guard connection >= 0 else { throw Errno(rawValue: ENOTCONN) }
        let n = bytes.withUnsafeBytes { Glibc.send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n < 0 { throw Errno(rawValue: errno) }
    }

    private func dropConnection() {
        close(connection)
        connection = -1
    }
}
