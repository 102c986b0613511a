/// Lifecycle phase of a log, driven by the kernel's suspend and resume calls.
public enum LogPhase: String, Sendable, Equatable {
    /// Constructed, not resumed yet.
    case constructed
    /// Resumed: I/O flows.
    case running
    /// PRESUSPEND seen: recovery is stopped.
    case presuspended
    /// POSTSUSPEND seen: no I/O until RESUME.
    case suspended
}

/// The state of one mirror log and the rules of every request on it (REFERENCE.md section 2).
///
/// Pure: regions in, answers out. Requests carry the member that issued them so that the cluster
/// layer can apply the same ordered stream on every member.
public struct MirrorLog: Sendable {
    public let uuid: String
    /// The uuid's bytes, for comparing with requests without building strings.
    public let uuidBytes: [UInt8]
    public let luid: UInt64
    public let arguments: ConstructorArguments
    public let regionCount: UInt64

    /// Regions with no write in flight anywhere that are in sync: what the disk log records.
    public internal(set) var clean: Bitmap
    /// Regions whose legs are identical.
    public internal(set) var sync: Bitmap
    /// Number of set bits in `sync`, kept up to date on every change (no popcount per request).
    public internal(set) var syncCount: UInt64
    /// Per-member marks.
    public internal(set) var marks: MarkTable
    /// Regions handed out as resync work, and to whom.
    public internal(set) var recovering: [UInt64: MemberID] = [:]
    public private(set) var phase: LogPhase = .constructed
    /// The log device, for disk logs.
    public internal(set) var disk: DiskState?

    /// Where the next GET_RESYNC_WORK search starts; moves forward only, reset by RESUME (as the kernel's own logs do).
    var resyncCursor: UInt64 = 0
    /// Every region below this is in sync. Lowered when a region goes out of sync; raised lazily.
    var lowestUnsyncedBound: UInt64 = 0

    /// A new log. `stateLost` says the kernel re-sent its constructor after the daemon was gone: a core
    /// log then must treat every region as out of sync, and a disk log trusts its device, whatever
    /// `sync`/`nosync` the table says.
    /// `uuidBytes` are the uuid exactly as the kernel sent it; `uuid` is its text for messages.
    public init(uuidBytes: [UInt8], luid: UInt64, arguments: ConstructorArguments, attachment: DeviceAttachment?, stateLost: Bool) {
        self.uuid = String(decoding: uuidBytes, as: UTF8.self)
        self.uuidBytes = uuidBytes
        self.luid = luid
        self.arguments = arguments
        self.regionCount = arguments.regionCount
        let inSync = arguments.syncMode == .noSync && !stateLost && !arguments.logType.hasLogDevice
        self.clean = Bitmap(count: regionCount, value: inSync)
        self.sync = Bitmap(count: regionCount, value: inSync)
        self.syncCount = inSync ? regionCount : 0
        self.marks = MarkTable(regionCount: regionCount)
        if let attachment { disk = DiskState(attachment: attachment, regionCount: regionCount) }
        self.stateLost = stateLost
        self.recoveryRestartPending = stateLost
    }

    private let stateLost: Bool

    /// The kernel reconnected after a daemon restart. Its reconnect path sends RESUME directly, so it
    /// keeps the `in_sync_hint` it cached before, and with a hint at the region count it never asks
    /// for resync work again. Only a real resume of the dm device resets the hint: the first RESUME
    /// after the reconnect asks the shell to suspend and resume the device if anything needs resync.
    public private(set) var recoveryRestartPending: Bool

    // MARK: Queries

    /// Checks that every region is below `regionCount`; returns the first bad one.
    public func firstOutOfRange<S: Sequence>(_ regions: S) -> UInt64? where S.Element == UInt64 {
        for region in regions where region >= regionCount { return region }
        return nil
    }

    /// Whether `bytes` is this log's uuid (a memcmp; no allocation).
    @inline(__always)
    public func hasUUID(_ bytes: ArraySlice<UInt8>) -> Bool {
        uuidBytes.withUnsafeBytes { mine in
            bytes.withUnsafeBytes { theirs in mine.count == theirs.count && mine.elementsEqual(theirs) }
        }
    }

    public func isClean(_ region: UInt64) -> Bool { clean[region] }

    public func isInSync(_ region: UInt64) -> Bool {
        sync[region]
    }

    /// The lowest region that still needs resync, or `regionCount`: the highest safe `in_sync_hint`.
    public mutating func lowestUnsyncedRegion() -> UInt64 {
        lowestUnsyncedBound = sync.firstIndex(of: false, from: lowestUnsyncedBound)
        return lowestUnsyncedBound
    }

    /// IS_REMOTE_RECOVERING for `region` asked by `member`: recovering if another member holds it as
    /// resync work. The hint never passes the lowest region that still needs resync: the kernel skips
    /// GET_RESYNC_WORK once the hint reaches the region count, and answers "not recovering" below it.
    public mutating func remoteRecovery(of region: UInt64, askedBy member: MemberID) -> (isRecovering: Bool, inSyncHint: UInt64) {
        var recoveringElsewhere = false
        if let owner = recovering[region], owner != member { recoveringElsewhere = true }
        return (recoveringElsewhere, lowestUnsyncedRegion())
    }

    // MARK: Writes to the bitmaps

    /// MARK_REGION: `member` is about to write these regions. Regions must be in range.
    public mutating func mark<S: Sequence>(_ regions: S, by member: MemberID) where S.Element == UInt64 {
        for region in regions {
            marks.mark(region, by: member)
            setClean(region, false)
        }
    }

    /// CLEAR_REGION: `member`'s writes to these regions are done. A region becomes clean again when
    /// nobody holds it and it is in sync.
    public mutating func clear<S: Sequence>(_ regions: S, by member: MemberID) where S.Element == UInt64 {
        for region in regions {
            marks.clear(region, by: member)
            if sync[region] && !marks.isHeld(region) { setClean(region, true) }
        }
    }

    /// SET_REGION_SYNC: recovery of `region` finished (in sync) or a leg write failed (out of sync).
    public mutating func setRegionSync(_ region: UInt64, inSync: Bool, by member: MemberID) {
        if recovering[region] != nil { recovering.removeValue(forKey: region) }
        if inSync {
            if sync.update(region, to: true) { syncCount += 1 }
            setClean(region, !marks.isHeld(region))
        } else {
            markOutOfSync(region)
        }
    }

    /// Marks `region` out of sync and not clean without touching who resyncs it (recovery of a failed
    /// member: a live member already copying the region keeps it).
    mutating func markOutOfSync(_ region: UInt64) {
        if sync.update(region, to: false) {
            syncCount -= 1
            if region < lowestUnsyncedBound { lowestUnsyncedBound = region }
        }
        setClean(region, false)
    }

    /// GET_RESYNC_WORK for `member`: the next out-of-sync region nobody is resyncing, or nil.
    ///
    /// dm-raid1 recovers one region at a time per node (MAX_RECOVERY is 1), so a member that asks
    /// while it still holds a region lost our earlier reply (the kernel re-sends after 15 s with a new
    /// seq): it gets the same region again, which otherwise would never be resynced before a resume.
    public mutating func nextResyncWork(for member: MemberID, skipping excluded: (UInt64) -> Bool = { _ in false }) -> UInt64? {
        if let held = recovering.lazy.filter({ $0.value == member }).map(\.key).min() { return held }
        var candidate = max(resyncCursor, lowestUnsyncedRegion())
        // Regions skipped because they are excluded stay ahead of the cursor, to be found again later.
        var firstSkipped: UInt64?
        while candidate < regionCount {
            candidate = sync.firstIndex(of: false, from: candidate)
            guard candidate < regionCount else { break }
            if recovering[candidate] == nil {
                if excluded(candidate) {
                    if firstSkipped == nil { firstSkipped = candidate }
                } else {
                    recovering[candidate] = member
                    resyncCursor = firstSkipped ?? candidate + 1
                    return candidate
                }
            }
            candidate += 1
        }
        resyncCursor = firstSkipped ?? regionCount
        return nil
    }

    // MARK: Lifecycle

    public mutating func presuspend() { phase = .presuspended }

    public mutating func postsuspend() {
        phase = .suspended
        // Nothing this node handed out can still be running: recovery stopped at presuspend.
        recovering.removeAll(keepingCapacity: true)
    }

    /// Whether the device must be suspended and resumed for the kernel to resync (see
    /// ``recoveryRestartPending``). Asked once, at the first RESUME after a reconnect.
    public mutating func takeRecoveryRestart() -> Bool {
        guard recoveryRestartPending else { return false }
        recoveryRestartPending = false
        return syncCount < regionCount
    }

    /// Takes the bitmaps of the suspended instance this one replaces in a table reload (same uuid and
    /// geometry; the caller checks). Marks are not taken: a suspended instance has no I/O in flight.
    public mutating func adoptState(of predecessor: MirrorLog) {
        precondition(predecessor.regionCount == regionCount, "geometry must match")
        sync = predecessor.sync
        syncCount = predecessor.syncCount
        clean = predecessor.clean
        unmarkHeldRegionsClean()
    }

    /// RESUME for a log whose state is in memory (core logs, or disk logs after their image was applied).
    public mutating func resume() {
        phase = .running
        resyncCursor = 0
        lowestUnsyncedBound = 0
        recovering.removeAll(keepingCapacity: true)
    }

    // MARK: Disk

    /// The size the on-disk image needs.
    public var diskImageBytes: Int? { disk?.format.imageBytes }

    /// Applies the image read from the log device at RESUME. Regions clean on disk are in sync; every
    /// other region, and all of them if the image is unusable or `sync` was asked for, are resynced.
    /// Returns notices for the operator. Marks the whole image dirty so the header is rewritten.
    public mutating func applyDiskImage(_ read: Result<[UInt8], DeviceIOError>) -> [Notice] {
        guard var state = disk else { return [] }
        var notices: [Notice] = []
        var loaded = Bitmap(count: regionCount)
        let honourDisk = stateLost || arguments.syncMode == .default
        switch read {
        case let .success(image) where honourDisk:
            switch state.format.decode(image) {
            case let .success(decoded):
                loaded = decoded.clean
                if decoded.recordedRegions != regionCount {
                    notices.append(Notice(.info, uuid: uuid, "log device recorded \(decoded.recordedRegions) regions, now \(regionCount); regions beyond the old end will be resynced"))
                }
            case let .failure(error):
                notices.append(Notice(.warning, uuid: uuid, "log device \(state.attachment.deviceNumber) holds no valid log (\(error)); resync issued for all \(regionCount) regions"))
            }
        case .success:
            if arguments.syncMode == .noSync { loaded.fill(true) }
            notices.append(Notice(.info, uuid: uuid, arguments.syncMode == .noSync ? "nosync: all regions marked in sync" : "sync: resync issued for all \(regionCount) regions"))
        case let .failure(error):
            state.failed = true
            notices.append(Notice(.error, uuid: uuid, "cannot read log device (\(error)); resync issued for all \(regionCount) regions"))
        }
        sync = loaded
        syncCount = loaded.popCount
        clean = loaded
        unmarkHeldRegionsClean()
        state.dirtyBlocks.fill(true)
        disk = state
        return notices
    }

    /// The writes that make the device match memory: runs of dirty blocks. Empty if nothing changed.
    public func pendingDiskWrites() -> [DiskWrite] {
        guard let state = disk else { return [] }
        var writes: [DiskWrite] = []
        writes.reserveCapacity(4)
        var block: UInt64 = state.dirtyBlocks.firstIndex(of: true, from: 0)
        while block < state.dirtyBlocks.count {
            let end = state.dirtyBlocks.firstIndex(of: false, from: block)
            let range = Int(block) ..< Int(end)
            writes.append(DiskWrite(offset: UInt64(range.lowerBound * state.format.blockSize), bytes: state.format.encodeBlocks(range, clean: clean, generation: state.recoveryGeneration)))
            block = state.dirtyBlocks.firstIndex(of: true, from: end)
        }
        return writes
    }

    /// Whether a flush has anything to write.
    public var hasDirtyBlocks: Bool {
        guard let state = disk else { return false }
        return state.dirtyBlocks.firstIndex(of: true, from: 0) < state.dirtyBlocks.count
    }

    /// The pending writes reached the device.
    public mutating func diskWritesSucceeded() {
        disk?.dirtyBlocks.fill(false)
    }

    /// A write failed: the blocks stay dirty for the next flush, and status shows `D`.
    public mutating func diskWriteFailed() {
        disk?.failed = true
    }

    /// Clears the failed flag (RESUME re-reads the device and starts afresh, as the kernel's disk log does).
    public mutating func resetDiskFailure() {
        disk?.failed = false
    }

    // MARK: Status

    /// STATUS_INFO: `1 <type>` or `3 <type> <major:minor> <A|D>`.
    public var statusInfo: String {
        if let disk {
            return "3 \(arguments.logType) \(disk.attachment.deviceNumber) \(disk.failed ? "D" : "A")"
        }
        return "1 \(arguments.logType)"
    }

    /// STATUS_TABLE, in the form of the kernel's own logs: `<type> <#args> [<dev>] <region size> [sync|nosync]`.
    public var statusTable: String {
        var words: [String] = []
        if let disk { words.append(disk.attachment.deviceNumber) }
        words.append(String(arguments.regionSize))
        if arguments.syncMode != .default { words.append(arguments.syncMode.rawValue) }
        if arguments.blockOnError { words.append("block_on_error") }
        return "\(arguments.logType) \(words.count) \(words.joined(separator: " "))"
    }

    // MARK: Helpers

    /// After `clean` was replaced wholesale (disk load, table reload): a region some member still
    /// holds a mark on is not clean.
    mutating func unmarkHeldRegionsClean() {
        for holder in marks.holders {
            var region = holder.regions.firstIndex(of: true, from: 0)
            while region < regionCount {
                setClean(region, false)
                region = holder.regions.firstIndex(of: true, from: region + 1)
            }
        }
    }

    @inline(__always)
    mutating func setClean(_ region: UInt64, _ value: Bool) {
        if clean.update(region, to: value), let format = disk?.format {
            disk?.dirtyBlocks[UInt64(format.block(ofWord: Int(region >> 6)))] = true
        }
    }
}
