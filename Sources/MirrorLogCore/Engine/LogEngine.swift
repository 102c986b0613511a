/// Every log this daemon serves, and the dispatch of kernel requests to them.
///
/// The engine is a pure state machine in the style of SWIM.Instance: ``handle(_:from:)`` takes a
/// request and returns ``Directive``s — a reply, or a device action whose result the shell feeds
/// back through `complete…`, which returns the next directives. Requests for different logs never
/// wait on each other; a log with a device action outstanding takes no other request until it
/// completes (the shell runs device actions to completion before reading the next message).
public struct LogEngine: Sendable {
    /// The logs, by the kernel's luid.
    public private(set) var logs: [UInt64: MirrorLog] = [:]

    /// A constructor waiting for its log device to open.
    private var pendingConstructors: [UInt64: PendingConstructor] = [:]
    /// The request a device action belongs to, per log.
    private var pendingDiskOperations: [UInt64: (operation: DiskOperation, header: RequestHeader)] = [:]

    private struct PendingConstructor: Sendable {
        var header: RequestHeader
        var uuidBytes: [UInt8]
        var uuid: String
        var arguments: ConstructorArguments
        var version: UInt32
        var stateLost: Bool
    }

    private enum DiskOperation: Sendable {
        case resumeLoad
        case resumeWrite
        case flush
    }

    public init() {}

    /// Whether a constructor of instance `luid` waits for its log device to open.
    public func isConstructing(luid: UInt64) -> Bool { pendingConstructors[luid] != nil }

    /// Handles one decoded request from `member` (``MemberID/local`` on a single node). `parsed` is
    /// a constructor's table, when the caller parsed it already.
    public mutating func handle(_ request: KernelRequest, from member: MemberID = .local, parsed: ConstructorArguments? = nil) -> [Directive] {
        let header = request.header
        let luid = header.luid
        func reply(_ reply: Reply, _ notices: [Notice] = []) -> [Directive] {
            notices.map(Directive.notice) + [.reply(header, reply)]
        }
        if request.type == .constructor {
            guard case let .constructor(text) = request.payload else { return reply(.failure(.invalidArgument)) }
            return construct(header, text, parsed: parsed)
        }
        guard let index = logs.index(forKey: luid) else {
            return Self.unknownLog(request)
        }
        guard logs.values[index].hasUUID(header.uuidBytes) else {
            let owner = logs.values[index].uuid
            return reply(.failure(.invalidArgument), [Notice(.error, uuid: header.uuid, "\(request.type) for luid \(luid) names uuid '\(header.uuid)', but that luid belongs to '\(owner)'")])
        }
        func outOfRange(_ region: UInt64) -> [Directive] {
            reply(.failure(.invalidArgument), [Notice(.error, uuid: logs.values[index].uuid, "\(request.type) names region \(region), but the log has \(logs.values[index].regionCount) regions; refused")])
        }
        switch request.type {
        case .constructor:
            return reply(.failure(.invalidArgument))   // not reached: constructors are handled above
        case .destructor:
            let log = logs.remove(at: index).value
            pendingDiskOperations.removeValue(forKey: luid)
            let notice = Notice(.info, uuid: log.uuid, "log destroyed")
            if log.disk != nil { return [.notice(notice), .closeDevice(luid: luid), .reply(header, .ok)] }
            return reply(.ok, [notice])
        case .presuspend:
            logs.values[index].presuspend()
            return reply(.ok)
        case .postsuspend:
            logs.values[index].postsuspend()
            return flushDisk(luid, header)
        case .resume:
            logs.values[index].resetDiskFailure()
            if let bytes = logs.values[index].diskImageBytes {
                pendingDiskOperations[luid] = (.resumeLoad, owned(header))
                return [.readDevice(io(luid), byteCount: bytes)]
            }
            if logs.values[index].phase == .constructed, let predecessor = suspendedPredecessor(of: logs.values[index]) {
                logs.values[index].adoptState(of: predecessor)
                let notice = Notice(.info, uuid: predecessor.uuid, "table reload: the new instance (luid \(luid)) takes over the state of the suspended one (luid \(predecessor.luid)); \(predecessor.syncCount)/\(predecessor.regionCount) regions in sync")
                logs.values[index].resume()
                return [.notice(notice)] + resumed(index, header)
            }
            logs.values[index].resume()
            return resumed(index, header)
        case .getRegionSize:
            return reply(Reply(payload: .count(UInt64(logs.values[index].arguments.regionSize))))
        case .isClean, .inSync:
            guard case let .region(region) = request.payload else { return reply(.failure(.invalidArgument)) }
            guard region < logs.values[index].regionCount else { return outOfRange(region) }
            let answer = request.type == .isClean ? logs.values[index].isClean(region) : logs.values[index].isInSync(region)
            return reply(Reply(payload: .flag(answer)))
        case .markRegion, .clearRegion:
            guard case let .regions(regions) = request.payload else { return reply(.failure(.invalidArgument)) }
            if let bad = logs.values[index].firstOutOfRange(regions) { return outOfRange(bad) }
            if request.type == .markRegion { logs.values[index].mark(regions, by: member) } else { logs.values[index].clear(regions, by: member) }
            return reply(.ok)
        case .flush:
            if case let .regions(regions) = request.payload {
                // integrated_flush: the marks ride inside the FLUSH. Ignoring them loses marks.
                if let bad = logs.values[index].firstOutOfRange(regions) { return outOfRange(bad) }
                logs.values[index].mark(regions, by: member)
            }
            return flushDisk(luid, header)
        case .getResyncWork:
            let region = logs.values[index].nextResyncWork(for: member)
            return reply(Reply(payload: .resyncWork(region)))
        case .setRegionSync:
            guard case let .regionSync(region, inSync) = request.payload else { return reply(.failure(.invalidArgument)) }
            guard region < logs.values[index].regionCount else { return outOfRange(region) }
            logs.values[index].setRegionSync(region, inSync: inSync, by: member)
            return reply(.ok)
        case .getSyncCount:
            return reply(Reply(payload: .count(logs.values[index].syncCount)))
        case .statusInfo:
            return reply(Reply(payload: .text(logs.values[index].statusInfo)))
        case .statusTable:
            return reply(Reply(payload: .text(logs.values[index].statusTable)))
        case .isRemoteRecovering:
            guard case let .region(region) = request.payload else { return reply(.failure(.invalidArgument)) }
            guard region < logs.values[index].regionCount else { return outOfRange(region) }
            let answer = logs.values[index].remoteRecovery(of: region, askedBy: member)
            return reply(Reply(payload: .remoteRecovering(isRecovering: answer.isRecovering, inSyncHint: answer.inSyncHint)))
        }
    }

    // MARK: Completions of device actions

    /// The log device named by a constructor was opened (or not).
    public mutating func completeOpen(luid: UInt64, _ result: Result<DeviceAttachment, DeviceIOError>) -> [Directive] {
        guard let pending = pendingConstructors.removeValue(forKey: luid) else {
            return [.notice(Notice(.error, uuid: nil, "device opened for luid \(luid), but no constructor was waiting")), .closeDevice(luid: luid)]
        }
        let header = pending.header
        switch result {
        case let .failure(error):
            return [.notice(Notice(.error, uuid: pending.uuid, "constructor refused: cannot use log device \(pending.arguments.logDevice?.description ?? "?"): \(error)")), .reply(header, .failure(.invalidArgument))]
        case let .success(attachment):
            if let other = logs.values.first(where: { $0.disk?.attachment.deviceNumber == attachment.deviceNumber && !$0.hasUUID(pending.uuidBytes[...]) }) {
                return [.notice(Notice(.error, uuid: pending.uuid, "constructor refused: log device \(attachment.deviceNumber) is already the log of '\(other.uuid)'")), .closeDevice(luid: luid), .reply(header, .failure(.busy))]
            }
            let format = DiskLogFormat(regionCount: pending.arguments.regionCount, blockSize: attachment.blockSize)
            guard UInt64(format.imageBytes) <= attachment.sizeBytes else {
                return [.notice(Notice(.error, uuid: pending.uuid, "constructor refused: log device \(attachment.deviceNumber) has \(attachment.sizeBytes) bytes, the log needs \(format.imageBytes) for \(pending.arguments.regionCount) regions")), .closeDevice(luid: luid), .reply(header, .failure(.invalidArgument))]
            }
            return finishConstruct(luid: luid, pending, attachment: attachment)
        }
    }

    /// The read asked for by a ``Directive/readDevice(_:byteCount:)`` finished.
    public mutating func completeRead(_ io: DeviceIO, _ result: Result<[UInt8], DeviceIOError>) -> [Directive] {
        let luid = io.luid
        guard let pending = pendingDiskOperations[luid], pending.operation == .resumeLoad, logs[luid] != nil else {
            pendingDiskOperations.removeValue(forKey: luid)
            return [.notice(Notice(.error, uuid: nil, "device read finished for luid \(luid), but no RESUME was waiting for it"))]
        }
        let notices = logs[luid]?.applyDiskImage(result) ?? []
        logs[luid]?.resume()
        pendingDiskOperations[luid] = (.resumeWrite, pending.header)
        return notices.map(Directive.notice) + [.writeDevice(io, logs[luid]?.pendingDiskWrites() ?? [])]
    }

    /// The writes asked for by a ``Directive/writeDevice(_:_:)`` finished.
    public mutating func completeWrite(_ io: DeviceIO, _ result: Result<Void, DeviceIOError>) -> [Directive] {
        let luid = io.luid
        guard let pending = pendingDiskOperations.removeValue(forKey: luid), let log = logs[luid] else {
            return [.notice(Notice(.error, uuid: nil, "device write finished for luid \(luid), but no request was waiting for it"))]
        }
        switch result {
        case .success:
            logs[luid]?.diskWritesSucceeded()
            if pending.operation == .resumeWrite, let index = logs.index(forKey: luid) { return resumed(index, pending.header) }
            return [.reply(pending.header, .ok)]
        case let .failure(error):
            let first = !(log.disk?.failed ?? false)
            logs[luid]?.diskWriteFailed()
            return [.notice(Notice(first ? .error : .debug, uuid: log.uuid, "log device write failed (\(error)); answering -EIO, status shows D")), .reply(pending.header, .failure(.ioError))]
        }
    }

    // MARK: Internals

    /// For a core log resuming for the first time: the suspended instance of the same uuid and geometry
    /// it replaces in a table reload, whose bitmaps are exact because I/O stopped before its POSTSUSPEND.
    private func suspendedPredecessor(of log: MirrorLog) -> MirrorLog? {
        guard log.disk == nil, log.arguments.syncMode != .forceSync else { return nil }
        return logs.values.first {
            $0.luid != log.luid && $0.uuidBytes == log.uuidBytes && $0.phase == .suspended && $0.disk == nil
                && $0.regionCount == log.regionCount && $0.arguments.regionSize == log.arguments.regionSize
        }
    }

    /// The reply to a RESUME that completed, asking for a recovery restart after a reconnect.
    private mutating func resumed(_ index: Dictionary<UInt64, MirrorLog>.Index, _ header: RequestHeader) -> [Directive] {
        guard logs.values[index].takeRecoveryRestart() else { return [.reply(header, .ok)] }
        let log = logs.values[index]
        let notice = Notice(.info, uuid: log.uuid, "resumed after the kernel reconnected with \(log.regionCount - log.syncCount) region(s) to resync; restarting the kernel's recovery with a suspend and resume of the device")
        return [.notice(notice), .reply(header, .ok), .restartRecovery(uuid: log.uuid)]
    }

    private mutating func flushDisk(_ luid: UInt64, _ header: RequestHeader) -> [Directive] {
        guard let log = logs[luid], log.hasDirtyBlocks else { return [.reply(header, .ok)] }
        pendingDiskOperations[luid] = (.flush, owned(header))
        return [.writeDevice(io(luid), log.pendingDiskWrites())]
    }

    /// A local log's device action: the log is its instance, and it has one action at a time.
    private func io(_ luid: UInt64) -> DeviceIO { DeviceIO(luid: luid, log: .local(luid: luid), ticket: 0) }

    /// A header that owns its uuid bytes (a request's borrows the receive buffer).
    private func owned(_ header: RequestHeader) -> RequestHeader {
        var copy = header
        copy.uuidBytes = ArraySlice(Array(header.uuidBytes))
        return copy
    }

    private mutating func construct(_ header: RequestHeader, _ text: ConstructorString, parsed: ConstructorArguments?) -> [Directive] {
        func reply(_ reply: Reply, _ notices: [Notice] = []) -> [Directive] {
            notices.map(Directive.notice) + [.reply(header, reply)]
        }
        let uuid = header.uuid
        let luid = header.luid
        if let existing = logs[luid] {
            if existing.hasUUID(header.uuidBytes) {
                // The kernel re-sent the constructor of a log we still have: keep the state. The reconnect
                // form (NUL-terminated) has no reply buffer, so it gets no payload; a CTR re-sent after
                // a timeout does, and the kernel registers the log device only from the reply it accepts.
                let notice = Notice(.info, uuid: uuid, "constructor re-sent for a known log; state kept")
                if let disk = existing.disk, header.version >= 2, !text.isNULTerminated {
                    return reply(Reply(payload: .deviceName(disk.attachment.deviceNumber)), [notice])
                }
                return reply(.ok, [notice])
            }
            return reply(.failure(.exists), [Notice(.error, uuid: uuid, "constructor refused: luid \(luid) already belongs to '\(existing.uuid)'")])
        }
        guard !header.uuidBytes.isEmpty else {
            return reply(.failure(.invalidArgument), [Notice(.error, uuid: nil, "constructor refused: empty uuid")])
        }
        let arguments: ConstructorArguments
        do {
            arguments = try parsed ?? ConstructorArguments.parse(text.text)
        } catch {
            return reply(.failure(.invalidArgument), [Notice(.error, uuid: uuid, "constructor refused: \(error) in '\(text.text)'")])
        }
        if arguments.logType.isClustered {
            return reply(.failure(.invalidArgument), [Notice(.error, uuid: uuid, "constructor refused: log type \(arguments.logType) is served by the cluster layer, not the local engine")])
        }
        // The same uuid under another luid is a table reload: the new instance is built while the old
        // one still serves, and the old one is destroyed after the new one resumes.
        let pending = PendingConstructor(header: owned(header), uuidBytes: Array(header.uuidBytes), uuid: uuid, arguments: arguments, version: header.version, stateLost: text.isNULTerminated)
        if let device = arguments.logDevice {
            pendingConstructors[luid] = pending
            return [.openDevice(luid: luid, device)]
        }
        return finishConstruct(luid: luid, pending, attachment: nil)
    }

    private mutating func finishConstruct(luid: UInt64, _ pending: PendingConstructor, attachment: DeviceAttachment?) -> [Directive] {
        let log = MirrorLog(uuidBytes: pending.uuidBytes, luid: luid, arguments: pending.arguments, attachment: attachment, stateLost: pending.stateLost)
        logs[luid] = log
        var message = "log created: \(pending.arguments.logType), \(log.regionCount) regions of \(pending.arguments.regionSize) sectors"
        if let attachment { message += ", log device \(attachment.deviceNumber)" }
        if pending.stateLost { message += "; kernel reconnected after the daemon was gone, so " + (attachment == nil ? "every region will be resynced" : "the state comes from the log device") }
        let notice = Notice(.info, uuid: pending.uuid, message)
        // Protocol 2+: hand the kernel the log device to hold open. Not on a reconnect: the kernel then
        // passes no reply buffer and a payload would fail with -ENOSPC.
        if let attachment, pending.version >= 2, !pending.stateLost {
            return [.notice(notice), .reply(pending.header, Reply(payload: .deviceName(attachment.deviceNumber)))]
        }
        return [.notice(notice), .reply(pending.header, .ok)]
    }

    /// The answer to a request of a log nobody serves. -ESRCH makes the kernel's request path re-send
    /// CTR and RESUME, then this request: the way back after a daemon restart that the kernel did not
    /// notice. The kernel stores the reply's data_size as the caller's buffer size, and the retry
    /// reuses that size: an -ESRCH without payload would make the retried reply fail with -ENOSPC
    /// (IN_SYNC then reads as 0 and the region is written to one leg only). So the -ESRCH carries a
    /// zeroed payload of the size this request's reply normally has. A destructor gets 0.
    public static func unknownLog(_ request: KernelRequest) -> [Directive] {
        let header = request.header
        if request.type == .destructor {
            return [.notice(Notice(.debug, uuid: header.uuid, "destructor for an unknown log (luid \(header.luid)); nothing to do")), .reply(header, .ok)]
        }
        let reply = Reply(error: -KernelErrno.noSuchProcess.rawValue, payload: placeholderPayload(for: request.type))
        return [.notice(Notice(.warning, uuid: header.uuid, "\(request.type) for unknown log (luid \(header.luid)); answering -ESRCH so the kernel re-sends its constructor")), .reply(header, reply)]
    }

    /// A zeroed payload with the size of `type`'s normal reply (none for requests without reply data).
    static func placeholderPayload(for type: RequestType) -> ReplyPayload {
        switch type {
        case .isClean, .inSync: .flag(false)
        case .getRegionSize, .getSyncCount: .count(0)
        case .getResyncWork: .resyncWork(nil)
        case .isRemoteRecovering: .remoteRecovering(isRecovering: false, inSyncHint: 0)
        case .constructor, .destructor, .presuspend, .postsuspend, .resume, .flush, .markRegion,
             .clearRegion, .setRegionSync, .statusInfo, .statusTable: .none
        }
    }
}
