/// The control socket's framing, shared by the daemon and `mirrorlogctl`: one request per packet,
/// `MLCTL <version> <command>\n`, and one answer per packet, `MLCTL <version> ok\n<body>` or
/// `MLCTL <version> error <reason>\n`. A client of another version gets an error naming ours.
public enum ControlProtocol {
    public static let version = 1

    /// What a client asks for.
    public enum Command: String, Sendable, CaseIterable {
        /// The ``StatusReport`` as JSON.
        case status
    }

    /// Why a request was refused.
    public enum RequestError: Error, Equatable, CustomStringConvertible {
        case malformed
        case unsupportedVersion(String)
        case unknownCommand(String)

        public var description: String {
            switch self {
            case .malformed: "malformed request (expected 'MLCTL \(ControlProtocol.version) <command>')"
            case let .unsupportedVersion(v): "protocol version \(v) not supported; this daemon speaks \(ControlProtocol.version)"
            case let .unknownCommand(c): "unknown command '\(c)'; known: \(Command.allCases.map(\.rawValue).joined(separator: ", "))"
            }
        }
    }

    public static func request(_ command: Command) -> [UInt8] {
        Array("MLCTL \(version) \(command.rawValue)\n".utf8)
    }

    public static func parseRequest(_ bytes: [UInt8]) -> Result<Command, RequestError> {
        guard bytes.count <= 256, let text = String(validating: bytes, as: UTF8.self) else { return .failure(.malformed) }
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard words.count == 3, words[0] == "MLCTL" else { return .failure(.malformed) }
        guard words[1] == "\(version)" else { return .failure(.unsupportedVersion(String(words[1]))) }
        guard let command = Command(rawValue: String(words[2])) else { return .failure(.unknownCommand(String(words[2]))) }
        return .success(command)
    }

    public static func ok(_ body: [UInt8]) -> [UInt8] {
        Array("MLCTL \(version) ok\n".utf8) + body
    }

    public static func error(_ reason: String) -> [UInt8] {
        Array("MLCTL \(version) error \(reason)\n".utf8)
    }

    /// An answer: the body, or the daemon's reason.
    public static func parseAnswer(_ bytes: [UInt8]) -> Result<[UInt8], ControlAnswerError> {
        guard let newline = bytes.firstIndex(of: UInt8(ascii: "\n")),
              let head = String(validating: bytes[..<newline], as: UTF8.self) else { return .failure(.malformed) }
        let words = head.split(separator: " ", maxSplits: 3)
        guard words.count >= 3, words[0] == "MLCTL" else { return .failure(.malformed) }
        guard words[1] == "\(version)" else { return .failure(.otherVersion(String(words[1]))) }
        switch words[2] {
        case "ok": return .success(Array(bytes[(newline + 1)...]))
        case "error": return .failure(.refused(words.count > 3 ? String(words[3]) : ""))
        default: return .failure(.malformed)
        }
    }
}

/// Why an answer of the daemon could not be used.
public enum ControlAnswerError: Error, Equatable, CustomStringConvertible {
    case malformed
    case otherVersion(String)
    case refused(String)

    public var description: String {
        switch self {
        case .malformed: "malformed answer from the daemon"
        case let .otherVersion(v): "the daemon speaks control protocol \(v), this mirrorlogctl \(ControlProtocol.version)"
        case let .refused(reason): "the daemon refused: \(reason)"
        }
    }
}
