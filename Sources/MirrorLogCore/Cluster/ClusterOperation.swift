/// A state change or ordered read applied by every member of a log's group at the same place in the
/// delivery order. Kernel requests become operations; a few come from the daemons themselves.
public enum ClusterOperation: Sendable, Equatable {
    /// MARK_REGION.
    case mark([UInt64])
    /// CLEAR_REGION.
    case clear([UInt64])
    /// FLUSH, with the marks of `integrated_flush` (empty otherwise).
    case flush(marks: [UInt64])
    /// IS_CLEAN, ordered so that a mark replied on any member is seen.
    case isClean(UInt64)
    /// IN_SYNC, ordered (unless the node's latch answers): a region another member just set in sync
    /// must not read as out of sync, or dm-raid1 would write it to the primary leg only.
    case inSync(UInt64)
    /// GET_RESYNC_WORK.
    case getResyncWork
    /// SET_REGION_SYNC.
    case setRegionSync(UInt64, inSync: Bool)
    /// IS_REMOTE_RECOVERING.
    case isRemoteRecovering(UInt64)
    /// RESUME of the sender's device.
    case resume
    /// POSTSUSPEND of the sender's device: a clean hand-over of its marks and resync work.
    case postsuspend
    /// The disk writer wrote the log device up to flush `number` (or failed to).
    case flushed(number: UInt64, failed: Bool)
    /// A quorate member saw the fencing condition for recovery generation `generation` met.
    case recoveryDone(generation: UInt64)
    /// The sender starts serving the log (its constructor): it becomes a member of the log. `boot`
    /// names the sender's kernel (its node's boot id): a restarted daemon takes over a failed
    /// member's marks only if both served the same kernel.
    case attach(boot: UInt64)
    /// The sender stopped serving the log (its last destructor): a clean leave.
    case detach
    /// The disk writer read the log device at first resume: the regions clean on disk (nil: the
    /// device was unreadable or held no valid log, so everything is resynced), and the recovery
    /// generation it recorded (0: none).
    case diskLoaded(clean: Bitmap?, generation: UInt64)

    enum Code: UInt8 {
        case mark = 1, clear, flush, isClean, getResyncWork, setRegionSync, isRemoteRecovering, resume,
             postsuspend, flushed, recoveryDone, diskLoaded, attach, detach, inSync
    }

    /// Whether this operation changes replicated state (and is therefore held while not quorate).
    public var changesState: Bool {
        switch self {
        case .isClean, .isRemoteRecovering, .inSync: false
        default: true
        }
    }

    /// Whether the operation is a state change from the sender's kernel, held while a failed
    /// member may be on the surviving side of a split (``ReplicatedLog/cutOff``).
    public var isHeldDuringRecovery: Bool {
        switch self {
        case .mark, .clear, .flush, .getResyncWork, .setRegionSync, .resume, .postsuspend: true
        case .isClean, .inSync, .isRemoteRecovering, .flushed, .recoveryDone, .attach, .detach, .diskLoaded: false
        }
    }

    func encode(into w: inout LittleEndianWriter) {
        switch self {
        case let .mark(regions): w.u8(Code.mark.rawValue); Self.encodeRegions(regions, into: &w)
        case let .clear(regions): w.u8(Code.clear.rawValue); Self.encodeRegions(regions, into: &w)
        case let .flush(marks): w.u8(Code.flush.rawValue); Self.encodeRegions(marks, into: &w)
        case let .isClean(region): w.u8(Code.isClean.rawValue); w.varint(region)
        case .getResyncWork: w.u8(Code.getResyncWork.rawValue)
        case let .setRegionSync(region, inSync): w.u8(Code.setRegionSync.rawValue); w.varint(region); w.u8(inSync ? 1 : 0)
        case let .isRemoteRecovering(region): w.u8(Code.isRemoteRecovering.rawValue); w.varint(region)
        case .resume: w.u8(Code.resume.rawValue)
        case .postsuspend: w.u8(Code.postsuspend.rawValue)
        case let .flushed(number, failed): w.u8(Code.flushed.rawValue); w.varint(number); w.u8(failed ? 1 : 0)
        case let .recoveryDone(generation): w.u8(Code.recoveryDone.rawValue); w.varint(generation)
        case let .inSync(region): w.u8(Code.inSync.rawValue); w.varint(region)
        case let .attach(boot): w.u8(Code.attach.rawValue); w.u64(boot)
        case .detach: w.u8(Code.detach.rawValue)
        case let .diskLoaded(clean, generation):
            w.u8(Code.diskLoaded.rawValue)
            w.varint(generation)
            if let clean {
                w.u8(1)
                BitmapRunLength.encode(clean, into: &w)
            } else {
                w.u8(0)
            }
        }
    }

    static func decode(from r: inout LittleEndianReader) throws(ClusterMessageError) -> ClusterOperation {
        let raw = try r.u8()
        guard let code = Code(rawValue: raw) else { throw .unknownOperation(raw) }
        switch code {
        case .mark: return .mark(try decodeRegions(from: &r))
        case .clear: return .clear(try decodeRegions(from: &r))
        case .flush: return .flush(marks: try decodeRegions(from: &r))
        case .isClean: return .isClean(try r.varint())
        case .getResyncWork: return .getResyncWork
        case .setRegionSync: return .setRegionSync(try r.varint(), inSync: try flag(&r))
        case .isRemoteRecovering: return .isRemoteRecovering(try r.varint())
        case .resume: return .resume
        case .postsuspend: return .postsuspend
        case .flushed: return .flushed(number: try r.varint(), failed: try flag(&r))
        case .recoveryDone: return .recoveryDone(generation: try r.varint())
        case .diskLoaded:
            let generation = try r.varint()
            return .diskLoaded(clean: try flag(&r) ? try BitmapRunLength.decode(from: &r) : nil, generation: generation)
        case .inSync: return .inSync(try r.varint())
        case .attach: return .attach(boot: try r.u64())
        case .detach: return .detach
        }
    }

    private static func flag(_ r: inout LittleEndianReader) throws(ClusterMessageError) -> Bool {
        switch try r.u8() {
        case 0: false
        case 1: true
        case let other: throw .malformed("flag byte \(other)")
        }
    }

    private static func encodeRegions(_ regions: [UInt64], into w: inout LittleEndianWriter) {
        w.varint(UInt64(regions.count))
        for region in regions { w.varint(region) }
    }

    private static func decodeRegions(from r: inout LittleEndianReader) throws(ClusterMessageError) -> [UInt64] {
        let n = try r.count()
        var regions: [UInt64] = []
        regions.reserveCapacity(n)
        for _ in 0 ..< n { regions.append(try r.varint()) }
        return regions
    }
}
