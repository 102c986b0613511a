/// The fixed part of a `dm_ulog_request`, as framed by the kernel.
///
/// `uuidBytes` is a view into the received buffer (without the terminating NUL); building a `String`
/// from it is left to the few places that need one, so the hot path allocates nothing.
public struct RequestHeader: Sendable, Equatable {
    /// Local unique id of the log instance (the kernel's `luid`).
    public var luid: UInt64
    /// The log's uuid bytes, without the NUL.
    public var uuidBytes: ArraySlice<UInt8>
    /// Protocol version the kernel speaks (`DM_ULOG_REQUEST_VERSION`).
    public var version: UInt32
    /// Error field as sent (the kernel sends 0).
    public var error: Int32
    /// Sequence number the reply must carry.
    public var seq: UInt32
    /// The raw `request_type` field, upper bits included.
    public var rawRequestType: UInt32

    public init(luid: UInt64, uuidBytes: ArraySlice<UInt8>, version: UInt32, error: Int32 = 0, seq: UInt32, rawRequestType: UInt32) {
        self.luid = luid
        self.uuidBytes = uuidBytes
        self.version = version
        self.error = error
        self.seq = seq
        self.rawRequestType = rawRequestType
    }

    /// The uuid as text (allocates).
    public var uuid: String { String(decoding: uuidBytes, as: UTF8.self) }
}

/// A framed message: header plus raw payload. Produced by ``WireDecoder/decodeFrame(_:)``.
public struct ULogFrame: Sendable, Equatable {
    public var header: RequestHeader
    public var payload: ArraySlice<UInt8>

    public init(header: RequestHeader, payload: ArraySlice<UInt8>) {
        self.header = header
        self.payload = payload
    }
}

/// The constructor string the kernel sends with CTR: `"<length> <log type> <args...>"`.
public struct ConstructorString: Sendable, Equatable {
    /// The text, without any terminating NUL.
    public var text: String
    /// True when the payload ended with a NUL. The kernel's first CTR sends `strlen` bytes; the CTR it
    /// re-sends to reconnect after the daemon was gone sends `strlen + 1`. So this marks a reconnect.
    public var isNULTerminated: Bool

    public init(text: String, isNULTerminated: Bool) {
        self.text = text
        self.isNULTerminated = isNULTerminated
    }
}

/// The typed payload of a request.
public enum RequestPayload: Sendable, Equatable {
    /// No payload.
    case none
    /// CTR.
    case constructor(ConstructorString)
    /// IS_CLEAN, IN_SYNC, IS_REMOTE_RECOVERING: one `u64` region.
    case region(UInt64)
    /// MARK_REGION, CLEAR_REGION, and FLUSH with `integrated_flush` marks: `u64` regions.
    case regions(RegionList)
    /// SET_REGION_SYNC: `{u64 region; i64 in_sync}`.
    case regionSync(region: UInt64, inSync: Bool)
}

/// A validated kernel request: header, type and typed payload.
public struct KernelRequest: Sendable, Equatable {
    public var header: RequestHeader
    public var type: RequestType
    public var payload: RequestPayload

    public init(header: RequestHeader, type: RequestType, payload: RequestPayload) {
        self.header = header
        self.type = type
        self.payload = payload
    }
}
