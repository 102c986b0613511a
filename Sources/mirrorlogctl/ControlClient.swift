import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

/// One request to the daemon's control socket and its answer; every wait is bounded (5 s).
enum ControlClient {
    /// Why the daemon could not be asked.
    enum Problem: Error, CustomStringConvertible {
        case connect(path: String, errno: Int32)
        case exchange(String)
        case answer(ControlAnswerError)

        var description: String {
            switch self {
            case let .connect(path, code):
                "cannot reach mirrorlogd at \(path): \(String(cString: strerror(code))) (is it running? root only)"
            case let .exchange(what): "no answer from mirrorlogd: \(what)"
            case let .answer(error): "\(error)"
            }
        }
    }

    static func ask(_ command: ControlProtocol.Command, at path: String) -> Result<[UInt8], Problem> {
        let fd = socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.connect(path: path, errno: errno)) }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return .failure(.connect(path: path, errno: ENAMETOOLONG)) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { return .failure(.connect(path: path, errno: errno)) }
        let request = ControlProtocol.request(command)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            return .failure(.exchange("sending failed: \(String(cString: strerror(errno)))"))
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 22)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else {
            return .failure(.exchange(n == 0 ? "the daemon closed the connection (only root may ask)" : String(cString: strerror(errno))))
        }
        return ControlProtocol.parseAnswer(Array(buffer[0 ..< n])).mapError(Problem.answer)
    }
}
