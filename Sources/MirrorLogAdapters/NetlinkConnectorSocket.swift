internal import CMirrorLogSys
import MirrorLogCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The kernel side of dm-log-userspace: a netlink connector socket joined to device-mapper's
/// multicast group (`CN_IDX_DM` = 7). It moves bytes; validating them is the codec's job.
public final class NetlinkConnectorSocket: KernelTransport {
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    private let fd: Int32
    /// Our netlink port id, put in the header of replies.
    public let portID: UInt32

    /// Opens the socket and joins group 7. Needs CAP_NET_ADMIN-free root (the kernel answers only root).
    public init() throws(Errno) {
        let fd = try check(mlsys_netlink_connector_socket())
        do {
            _ = try check(mlsys_netlink_bind_and_join(fd, WireLayout.connectorIndex))
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.portID = mlsys_netlink_port_id(fd)
    }

    deinit { close(fd) }

    /// Receives one datagram without blocking. Returns nil when nothing is waiting.
    public func receive(into buffer: inout [UInt8]) throws(Errno) -> ReceivedDatagram? {
        var sender: UInt32 = 0
        let capacity = buffer.count
        let n = buffer.withUnsafeMutableBytes { mlsys_netlink_recv(fd, $0.baseAddress, capacity, &sender, 1) }
        if n == -Int(EAGAIN) || n == -Int(EWOULDBLOCK) { return nil }
        if n == -Int(EINTR) { return nil }
        // ENOBUFS: the kernel dropped messages for us; it re-sends after its 15 s timeout. Report it.
        let count = try check(n)
        return ReceivedDatagram(byteCount: Int(count), senderPortID: sender, fromKernel: sender == 0)
    }

    /// Sends one reply datagram to the kernel.
    public func send(_ bytes: [UInt8]) throws(Errno) {
        let n = bytes.withUnsafeBytes { mlsys_netlink_send_to_kernel(fd, $0.baseAddress, $0.count) }
        _ = try check(n)
    }
}

/// One datagram taken off a kernel transport.
public struct ReceivedDatagram: Sendable, Equatable {
    public var byteCount: Int
    /// Sender's netlink port id (0 is the kernel).
    public var senderPortID: UInt32
    /// Whether the sender is allowed to make requests (the kernel, for netlink).
    public var fromKernel: Bool
}

/// Where kernel requests come from and replies go: the netlink connector, or a test transport.
public protocol KernelTransport: AnyObject {
    /// The descriptor to poll for readability.
    var fileDescriptor: FileDescriptor { get }
    /// The port id to put in reply headers.
    var portID: UInt32 { get }
    func receive(into buffer: inout [UInt8]) throws(Errno) -> ReceivedDatagram?
    func send(_ bytes: [UInt8]) throws(Errno)
}
