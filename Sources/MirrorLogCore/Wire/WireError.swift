/// A message that cannot be framed: it is dropped (there is no trustworthy `seq` to answer) and counted.
public enum FramingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the headers need.
    case truncated(have: Int, need: Int)
    /// More bytes than the connector allows.
    case oversized(Int)
    /// `nlmsg_len` disagrees with the datagram.
    case netlinkLengthMismatch(nlmsgLen: Int, datagram: Int)
    /// A netlink control message (error, noop, overrun) instead of connector data.
    case unexpectedNetlinkType(UInt16)
    /// The connector callback id is not `{7, 1}`.
    case wrongCallbackID(index: UInt32, value: UInt32)
    /// `cn_msg.len` disagrees with the netlink length.
    case connectorLengthMismatch(cnLen: Int, available: Int)
    /// `data_size` disagrees with `cn_msg.len`.
    case dataSizeMismatch(dataSize: Int, available: Int)
    /// The uuid field holds no NUL within its 129 bytes.
    case uuidNotTerminated

    public var description: String {
        switch self {
        case let .truncated(have, need): "truncated message: \(have) bytes, need at least \(need)"
        case let .oversized(n): "oversized message: \(n) bytes"
        case let .netlinkLengthMismatch(l, d): "nlmsg_len \(l) disagrees with the datagram length \(d)"
        case let .unexpectedNetlinkType(t): "unexpected netlink message type \(t)"
        case let .wrongCallbackID(i, v): "wrong connector id {\(i), \(v)}, expected {7, 1}"
        case let .connectorLengthMismatch(c, a): "cn_msg.len \(c) disagrees with the \(a) bytes after the netlink header"
        case let .dataSizeMismatch(d, a): "data_size \(d) disagrees with the \(a) payload bytes"
        case .uuidNotTerminated: "uuid field is not NUL-terminated"
        }
    }
}

/// A well-framed request whose content is invalid: it is answered with `-EINVAL`.
public enum RequestError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The low 8 bits of `request_type` name no known request.
    case unknownRequestType(UInt32)
    /// A protocol version this daemon does not speak.
    case unsupportedVersion(UInt32)
    /// The payload has the wrong size for this request type.
    case badPayloadSize(RequestType, got: Int, expected: String)
    /// A region array whose size is not a multiple of 8 bytes.
    case regionArrayMisaligned(RequestType, bytes: Int)
    /// The constructor string is not valid UTF-8 or holds a NUL before its end.
    case badConstructorString

    public var description: String {
        switch self {
        case let .unknownRequestType(t): "unknown request type \(t)"
        case let .unsupportedVersion(v): "unsupported protocol version \(v) (this daemon speaks 1 to \(WireLayout.newestProtocolVersion))"
        case let .badPayloadSize(t, got, expected): "\(t) payload is \(got) bytes, expected \(expected)"
        case let .regionArrayMisaligned(t, bytes): "\(t) region array is \(bytes) bytes, not a multiple of 8"
        case .badConstructorString: "constructor string is not valid text"
        }
    }
}
