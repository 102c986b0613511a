import MirrorLogAdapters
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
        let fd: Int32
        do {
            fd = try connectToUnixSocket(path: path, timeout: 5)
        } catch {
            return .failure(.connect(path: path, errno: error.rawValue))
        }
        defer { close(fd) }
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
