@testable import MirrorLogCore

// Small builders shared by the test files.

/// Bytes from a hex string such as "D4 00 00 00" (whitespace ignored).
func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    var bytes: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        bytes.append(UInt8(digits[index ..< next], radix: 16)!)
        index = next
    }
    return bytes
}

func zeros(_ count: Int) -> [UInt8] { [UInt8](repeating: 0, count: count) }

/// Little-endian bytes of an integer (the host is little endian on every platform we build for;
/// LayoutTests checks it).
func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

func makeHeader(luid: UInt64 = 1, uuid: String = "LVM-test", version: UInt32 = 3, seq: UInt32 = 1, rawType: UInt32) -> RequestHeader {
    RequestHeader(luid: luid, uuidBytes: Array(uuid.utf8)[...], version: version, seq: seq, rawRequestType: rawType)
}

/// A request as the kernel would frame it.
func makeRequest(_ type: RequestType, _ payload: RequestPayload = .none, luid: UInt64 = 1, uuid: String = "LVM-test", version: UInt32 = 3, seq: UInt32 = 1) -> KernelRequest {
    KernelRequest(header: makeHeader(luid: luid, uuid: uuid, version: version, seq: seq, rawType: type.rawValue), type: type, payload: payload)
}

func encoded(_ request: KernelRequest) -> [UInt8] {
    var buffer: [UInt8] = []
    WireEncoder.encodeRequest(request, into: &buffer)
    return buffer
}

/// Encodes `request` and decodes it again, so the engine sees what the decoder produces.
func wire(_ request: KernelRequest) -> KernelRequest {
    try! WireDecoder.decode(encoded(request))
}

func ctr(_ text: String, nul: Bool = false) -> RequestPayload {
    .constructor(ConstructorString(text: text, isNULTerminated: nul))
}

func regions(_ list: [UInt64]) -> RequestPayload { .regions(RegionList(list)) }

/// Drives a `LogEngine` with decoded requests for one log at a time.
struct Harness {
    var engine = LogEngine()
    var seq: UInt32 = 0
    var luid: UInt64 = 0x10
    var uuid = "LVM-harness"
    var version: UInt32 = 3

    init() {}

    mutating func send(_ type: RequestType, _ payload: RequestPayload = .none, luid: UInt64? = nil, uuid: String? = nil, version: UInt32? = nil, from member: MemberID = .local) -> [Directive] {
        seq &+= 1
        let request = wire(makeRequest(type, payload, luid: luid ?? self.luid, uuid: uuid ?? self.uuid, version: version ?? self.version, seq: seq))
        return engine.handle(request, from: member)
    }

    /// Sends a request that must be answered at once, and returns the reply.
    mutating func reply(_ type: RequestType, _ payload: RequestPayload = .none, luid: UInt64? = nil, uuid: String? = nil, version: UInt32? = nil, from member: MemberID = .local) -> Reply {
        let output = send(type, payload, luid: luid, uuid: uuid, version: version, from: member)
        guard case let .reply(reply) = output.action else {
            preconditionFailure("expected a reply to \(type), got \(output.action)")
        }
        return reply
    }

    // Typed queries.
    mutating func isClean(_ r: UInt64, from m: MemberID = .local) -> Bool? { flag(reply(.isClean, .region(r), from: m)) }
    mutating func inSync(_ r: UInt64, from m: MemberID = .local) -> Bool? { flag(reply(.inSync, .region(r), from: m)) }
    mutating func syncCount() -> UInt64? {
        if case let .count(n) = reply(.getSyncCount).payload { return n }
        return nil
    }
    mutating func resyncWork(from m: MemberID = .local) -> UInt64?? {
        if case let .resyncWork(r) = reply(.getResyncWork, from: m).payload { return .some(r) }
        return nil
    }
    mutating func remoteRecovering(_ r: UInt64, from m: MemberID = .local) -> (Bool, UInt64)? {
        if case let .remoteRecovering(rec, hint) = reply(.isRemoteRecovering, .region(r), from: m).payload { return (rec, hint) }
        return nil
    }
    mutating func statusInfo() -> String? {
        if case let .text(s) = reply(.statusInfo).payload { return s }
        return nil
    }

    var log: MirrorLog? { engine.logs[luid] }

    private func flag(_ reply: Reply) -> Bool? {
        if reply.error == 0, case let .flag(b) = reply.payload { return b }
        return nil
    }
}

let memberA = MemberID(nodeID: 1, pid: 100)
let memberB = MemberID(nodeID: 2, pid: 200)
let memberC = MemberID(nodeID: 3, pid: 300)

let EINVAL: Int32 = -22
let ESRCH: Int32 = -3
let EIO: Int32 = -5
let EEXIST: Int32 = -17

/// What a local log's directives amount to, for assertions: its one reply or device action (a close
/// together with the reply that follows it).
enum Step: Equatable {
    case reply(Reply)
    case openDevice(luid: UInt64, LogDeviceSpec)
    case readDevice(luid: UInt64, byteCount: Int)
    case writeDevice(luid: UInt64, [DiskWrite])
    case closeDevice(luid: UInt64, then: Reply)
    case nothing
}

extension Array where Element == Directive {
    var action: Step {
        var closed: UInt64?
        for directive in self {
            switch directive {
            case let .closeDevice(luid): closed = luid
            case let .reply(_, reply): return closed.map { .closeDevice(luid: $0, then: reply) } ?? .reply(reply)
            case let .openDevice(luid, spec): return .openDevice(luid: luid, spec)
            case let .readDevice(io, byteCount): return .readDevice(luid: io.luid, byteCount: byteCount)
            case let .writeDevice(io, writes): return .writeDevice(luid: io.luid, writes)
            default: continue
            }
        }
        return .nothing
    }

    var notices: [Notice] {
        compactMap { if case let .notice(notice) = $0 { notice } else { nil } }
    }

    var restartRecoveryOf: String? {
        for case let .restartRecovery(uuid) in self { return uuid }
        return nil
    }
}

extension LogEngine {
    /// A local log's device read finished (its one action at a time).
    mutating func completeRead(luid: UInt64, _ result: Result<[UInt8], DeviceIOError>) -> [Directive] {
        completeRead(DeviceIO(luid: luid, log: .local(luid: luid), ticket: 0), result)
    }

    /// A local log's device write finished.
    mutating func completeWrite(luid: UInt64, _ result: Result<Void, DeviceIOError>) -> [Directive] {
        completeWrite(DeviceIO(luid: luid, log: .local(luid: luid), ticket: 0), result)
    }
}
