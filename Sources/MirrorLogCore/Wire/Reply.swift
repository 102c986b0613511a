/// What the daemon answers to one request: an error (0 or a negative errno) and a typed payload.
public struct Reply: Sendable, Equatable {
    /// 0 on success, a negative errno on failure (`-EINVAL`, `-EIO`, ...).
    public var error: Int32
    public var payload: ReplyPayload

    public init(error: Int32 = 0, payload: ReplyPayload = .none) {
        self.error = error
        self.payload = payload
    }

    /// A success with no payload.
    public static let ok = Reply()

    /// A failure with the given errno (positive), sent negated as the kernel expects.
    public static func failure(_ errno: KernelErrno) -> Reply { Reply(error: -errno.rawValue, payload: .none) }
}

/// The errno values the engine answers with. Values are Linux's.
public struct KernelErrno: RawRepresentable, Sendable, Equatable, Hashable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let ioError = KernelErrno(rawValue: 5)          // EIO
    public static let noSuchProcess = KernelErrno(rawValue: 3)    // ESRCH
    public static let tryAgain = KernelErrno(rawValue: 11)        // EAGAIN
    public static let noMemory = KernelErrno(rawValue: 12)        // ENOMEM
    public static let busy = KernelErrno(rawValue: 16)            // EBUSY
    public static let exists = KernelErrno(rawValue: 17)          // EEXIST
    public static let noDevice = KernelErrno(rawValue: 19)        // ENODEV
    public static let invalidArgument = KernelErrno(rawValue: 22) // EINVAL
    public static let noSpace = KernelErrno(rawValue: 28)         // ENOSPC
    public static let notSupported = KernelErrno(rawValue: 95)    // EOPNOTSUPP

    public var description: String {
        switch rawValue {
        case 3: "ESRCH"
        case 5: "EIO"
        case 11: "EAGAIN"
        case 12: "ENOMEM"
        case 16: "EBUSY"
        case 17: "EEXIST"
        case 19: "ENODEV"
        case 22: "EINVAL"
        case 28: "ENOSPC"
        case 95: "EOPNOTSUPP"
        default: "errno \(rawValue)"
        }
    }
}

/// The typed payload of a reply; see REFERENCE.md section 2 for the layouts.
public enum ReplyPayload: Sendable, Equatable {
    /// No payload (`data_size` 0).
    case none
    /// `i64` 0 or 1: IS_CLEAN, IN_SYNC.
    case flag(Bool)
    /// `u64`: GET_REGION_SIZE, GET_SYNC_COUNT.
    case count(UInt64)
    /// `{i64 i; u64 r}`: GET_RESYNC_WORK; nil means no work.
    case resyncWork(UInt64?)
    /// `{i64 is_recovering; u64 in_sync_hint}`: IS_REMOTE_RECOVERING.
    case remoteRecovering(isRecovering: Bool, inSyncHint: UInt64)
    /// A status string, sent without a NUL: STATUS_INFO, STATUS_TABLE.
    case text(String)
    /// A device name for the kernel to open, sent with a NUL: CTR (protocol version 2 and later).
    case deviceName(String)

    /// The number of payload bytes this encodes to.
    public var encodedSize: Int {
        switch self {
        case .none: 0
        case .flag, .count: 8
        case .resyncWork, .remoteRecovering: 16
        case let .text(s): s.utf8.count
        case let .deviceName(s): s.utf8.count + 1
        }
    }
}
