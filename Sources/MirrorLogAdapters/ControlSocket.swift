internal import CMirrorLogSys
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The operator's control socket: a Unix `SOCK_SEQPACKET` socket (mode 0600), one request per packet
/// and one answer per packet. Only root may talk to it (checked with `SO_PEERCRED`). Never blocks
/// the event loop: accepts and receives without waiting, and a client that does not take its answer
/// at once is dropped. Decides nothing: requests come out as values, answers go in as bytes.
public final class ControlSocket {
    /// At most this many clients at once; more are turned away.
    public static let maximumClients = 16

    public let path: String
    private let listener: Int32
    private var clients: [Int32] = []

    /// A request from a client (answer it with ``answer(_:with:)``).
    public struct Request: Sendable {
        public let client: Int32
        public let bytes: [UInt8]
    }

    /// Listens on `path` (a stale socket file there is replaced).
    public init(path: String) throws(Errno) {
        listener = try listenOnUnixSocket(path: path, nonBlocking: true, backlog: 8)
        self.path = path
    }

    deinit {
        for client in clients { close(client) }
        close(listener)
        unlink(path)
    }

    /// The descriptors to poll: the listener first, then each client.
    public var fileDescriptors: [FileDescriptor] { ([listener] + clients).map { FileDescriptor(rawValue: $0) } }

    /// Accepts waiting clients (root only) and takes one request from each readable client.
    /// Returns the requests; closed or failing clients are dropped.
    public func service() -> [Request] {
        while clients.count < Self.maximumClients {
            let fd = mlsys_accept_nonblocking(listener)
            guard fd >= 0 else { break }
            if peerIsRoot(fd) { clients.append(fd) } else { close(fd) }
        }
        var requests: [Request] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        for client in clients {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n > 0 {
                requests.append(Request(client: client, bytes: Array(buffer[0 ..< n])))
            } else if n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                drop(client)
            }
        }
        return requests
    }

    /// Sends `bytes` as the answer to `client` without waiting; a client that cannot take it now is dropped.
    public func answer(_ client: Int32, with bytes: [UInt8]) {
        guard clients.contains(client) else { return }
        let sent = bytes.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL)) }
        if sent != bytes.count { drop(client) }
    }

    private func drop(_ client: Int32) {
        clients.removeAll { $0 == client }
        close(client)
    }

    private func peerIsRoot(_ fd: Int32) -> Bool {
        var uid: UInt32 = .max
        return mlsys_peer_uid(fd, &uid) == 0 && uid == 0
    }
}
