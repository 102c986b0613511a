/// The 17 dm-log-userspace request types (`DM_ULOG_*` in `linux/dm-log-userspace.h`).
///
/// The kernel puts the type in the low 8 bits of `request_type`; the upper bits are reserved.
public enum RequestType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case constructor = 1
    case destructor = 2
    case presuspend = 3
    case postsuspend = 4
    case resume = 5
    case getRegionSize = 6
    case isClean = 7
    case inSync = 8
    case flush = 9
    case markRegion = 10
    case clearRegion = 11
    case getResyncWork = 12
    case setRegionSync = 13
    case getSyncCount = 14
    case statusInfo = 15
    case statusTable = 16
    case isRemoteRecovering = 17

    /// Mask applied to the raw `request_type` field (`DM_ULOG_REQUEST_MASK`).
    public static let mask: UInt32 = 0xFF

    /// The kernel's name for the request, e.g. `DM_ULOG_MARK_REGION`.
    public var description: String {
        switch self {
        case .constructor: "CTR"
        case .destructor: "DTR"
        case .presuspend: "PRESUSPEND"
        case .postsuspend: "POSTSUSPEND"
        case .resume: "RESUME"
        case .getRegionSize: "GET_REGION_SIZE"
        case .isClean: "IS_CLEAN"
        case .inSync: "IN_SYNC"
        case .flush: "FLUSH"
        case .markRegion: "MARK_REGION"
        case .clearRegion: "CLEAR_REGION"
        case .getResyncWork: "GET_RESYNC_WORK"
        case .setRegionSync: "SET_REGION_SYNC"
        case .getSyncCount: "GET_SYNC_COUNT"
        case .statusInfo: "STATUS_INFO"
        case .statusTable: "STATUS_TABLE"
        case .isRemoteRecovering: "IS_REMOTE_RECOVERING"
        }
    }
}
