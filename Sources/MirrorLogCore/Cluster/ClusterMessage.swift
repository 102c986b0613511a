/// A message between the members of a log's CPG group.
///
/// Every message starts with a fixed header: magic `"MLDC"`, protocol version, message type (all
/// little endian). A member whose header names a version this daemon does not speak is refused and
/// ignored, never mis-parsed (see Docs/cluster.md for the rolling-upgrade rules).
public enum ClusterMessage: Sendable, Equatable {
    /// Operations to apply in delivery order, grouped by log; each carries the sender's token (0 when
    /// the sender waits for no answer). One message carries the requests of every log that the
    /// sender's event loop collected in one pass.
    case operations([LogBatch])
    /// One chunk of a state transfer.
    case snapshotChunk(SnapshotChunk)
    /// The logs the sender serves, sent when another daemon joins the ordering group so that it
    /// learns who serves what before it attaches its own logs. `members` are the ordering group's
    /// members as the sender knew them when it wrote the census: a joiner trusts only a census
    /// that already counts it (one written earlier may predate the sender's own attach). `boot`
    /// names the sender's kernel, as in ``ClusterOperation/attach(boot:)``.
    case census(logs: [[UInt8]], members: [MemberID], boot: UInt64)

    /// `"MLDC"`.
    public static let magic: UInt32 = 0x4D4C_4443
    /// The protocol version this daemon speaks.
    public static let protocolVersion: UInt16 = 2
    /// Header bytes: magic, version, type.
    public static let headerSize = 8

    enum Kind: UInt16 {
        case operations = 1
        case snapshotChunk = 2
        case census = 3
    }

    /// Encodes the message with its header.
    public func encoded() -> [UInt8] {
        var w = LittleEndianWriter(capacity: 64)
        w.u32(Self.magic)
        w.u16(Self.protocolVersion)
        switch self {
        case let .operations(batches):
            w.u16(Kind.operations.rawValue)
            w.varint(UInt64(batches.count))
            for batch in batches {
                w.blob(batch.log)
                w.varint(UInt64(batch.entries.count))
                for entry in batch.entries {
                    w.varint(entry.token)
                    entry.operation.encode(into: &w)
                }
            }
        case let .census(logs, members, boot):
            w.u16(Kind.census.rawValue)
            w.u64(boot)
            w.varint(UInt64(logs.count))
            for log in logs { w.blob(log) }
            w.varint(UInt64(members.count))
            for member in members { w.member(member) }
        case let .snapshotChunk(chunk):
            w.u16(Kind.snapshotChunk.rawValue)
            chunk.encode(into: &w)
        }
        return w.bytes
    }

    /// Decodes a delivered message; throws a typed error for anything not exactly well formed.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(ClusterMessageError) -> ClusterMessage {
        var r = LittleEndianReader(bytes)
        let magic = try r.u32()
        guard magic == Self.magic else { throw .badMagic(magic) }
        let version = try r.u16()
        guard version == Self.protocolVersion else { throw .unsupportedVersion(version) }
        let rawKind = try r.u16()
        guard let kind = Kind(rawValue: rawKind) else { throw .unknownMessageType(rawKind) }
        let message: ClusterMessage
        switch kind {
        case .operations:
            var batches: [LogBatch] = []
            for _ in 0 ..< (try r.count(minimumElementSize: 2)) {
                let log = try logName(&r)
                let n = try r.count(minimumElementSize: 2)
                var entries: [TokenedOperation] = []
                entries.reserveCapacity(n)
                for _ in 0 ..< n {
                    let token = try r.varint()
                    entries.append(TokenedOperation(token: token, operation: try ClusterOperation.decode(from: &r)))
                }
                batches.append(LogBatch(log: log, entries: entries))
            }
            message = .operations(batches)
        case .census:
            let boot = try r.u64()
            var logs: [[UInt8]] = []
            for _ in 0 ..< (try r.count(minimumElementSize: 2)) { logs.append(try logName(&r)) }
            var members: [MemberID] = []
            for _ in 0 ..< (try r.count(minimumElementSize: 8)) { members.append(try r.member()) }
            message = .census(logs: logs, members: members, boot: boot)
        case .snapshotChunk:
            message = .snapshotChunk(try SnapshotChunk.decode(from: &r))
        }
        guard r.isAtEnd else { throw .trailingBytes(r.remaining) }
        return message
    }
}

/// A log's uuid as carried in messages: 1 to 128 bytes.
func logName(_ r: inout LittleEndianReader) throws(ClusterMessageError) -> [UInt8] {
    let name = try r.blob()
    guard !name.isEmpty, name.count <= 128 else { throw .malformed("log name of \(name.count) bytes") }
    return name
}

/// The operations of one log inside an operations message.
public struct LogBatch: Sendable, Equatable {
    /// The log's uuid bytes.
    public var log: [UInt8]
    public var entries: [TokenedOperation]

    public init(log: [UInt8], entries: [TokenedOperation]) {
        self.log = log
        self.entries = entries
    }
}

/// An operation and the token its sender uses to match the result to a waiting kernel request.
public struct TokenedOperation: Sendable, Equatable {
    public var token: UInt64
    public var operation: ClusterOperation

    public init(token: UInt64, operation: ClusterOperation) {
        self.token = token
        self.operation = operation
    }
}

/// Why a cluster message was refused.
public enum ClusterMessageError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(at: Int)
    case badMagic(UInt32)
    case unsupportedVersion(UInt16)
    case unknownMessageType(UInt16)
    case unknownOperation(UInt8)
    case malformed(String)
    case trailingBytes(Int)

    public var description: String {
        switch self {
        case let .truncated(at): "message truncated at byte \(at)"
        case let .badMagic(m): "bad magic 0x\(String(m, radix: 16)) (not a mirrorlogd cluster message)"
        case let .unsupportedVersion(v): "cluster protocol version \(v), this daemon speaks version \(ClusterMessage.protocolVersion)"
        case let .unknownMessageType(t): "unknown message type \(t)"
        case let .unknownOperation(o): "unknown operation code \(o)"
        case let .malformed(what): "malformed message: \(what)"
        case let .trailingBytes(n): "\(n) unexpected bytes after the message"
        }
    }
}
