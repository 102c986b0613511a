extension ClusterLog {
    /// A request from a local instance's kernel (not CTR or DTR, which ``ClusterNode`` handles).
    /// Reads of replicated state that are safe without a round trip are answered at once; everything
    /// else becomes an operation that is answered when it comes back in the delivery order.
    mutating func handleKernel(_ request: KernelRequest) -> [Directive] {
        var header = request.header
        header.uuidBytes = ArraySlice(Array(request.header.uuidBytes))
        let regionCount = arguments.regionCount
        let operation: ClusterOperation
        switch request.type {
        case .constructor, .destructor:
            return [.reply(header, .failure(.invalidArgument))]
        case .presuspend:
            return [.reply(header, .ok)]
        case .getRegionSize:
            return [.reply(header, Reply(payload: .count(UInt64(arguments.regionSize))))]
        case .inSync:
            guard case let .region(region) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
            guard region < regionCount else { return outOfRange(header, request.type, region) }
            // Once everything was in sync, the answer is 1 until our next resume (LVM2 bug 596453).
            if latched { return [.reply(header, Reply(payload: .flag(true)))] }
            // Otherwise ordered: a stale 0 would make dm-raid1 write a region that is in sync to the
            // primary leg only, and nobody would resync it.
            operation = .inSync(region)
        case .getSyncCount:
            let count = replica?.reportedSyncCount ?? 0
            if count >= regionCount { kernelHintMayBeFull = true }
            return [.reply(header, Reply(payload: .count(count)))]
        case .statusInfo:
            return [.reply(header, Reply(payload: .text(statusInfo(luid: header.luid))))]
        case .statusTable:
            return [.reply(header, Reply(payload: .text(templateLog(stateLost: false).statusTable)))]
        case .postsuspend:
            operation = .postsuspend
        case .resume:
            operation = .resume
        case .markRegion, .clearRegion:
            guard case let .regions(list) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
            let regions = Array(list)
            if let bad = regions.first(where: { $0 >= regionCount }) { return outOfRange(header, request.type, bad) }
            operation = request.type == .markRegion ? .mark(regions) : .clear(regions)
        case .flush:
            var marks: [UInt64] = []
            if case let .regions(list) = request.payload { marks = Array(list) }
            if let bad = marks.first(where: { $0 >= regionCount }) { return outOfRange(header, request.type, bad) }
            operation = .flush(marks: marks)
        case .isClean:
            guard case let .region(region) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
            guard region < regionCount else { return outOfRange(header, request.type, region) }
            operation = .isClean(region)
        case .isRemoteRecovering:
            guard case let .region(region) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
            guard region < regionCount else { return outOfRange(header, request.type, region) }
            operation = .isRemoteRecovering(region)
        case .getResyncWork:
            operation = .getResyncWork
        case .setRegionSync:
            guard case let .regionSync(region, inSync) = request.payload else { return [.reply(header, .failure(.invalidArgument))] }
            guard region < regionCount else { return outOfRange(header, request.type, region) }
            operation = .setRegionSync(region, inSync: inSync)
        }
        // The kernel re-sends a request after 15 s without an answer (while we hold requests without
        // quorum, say). State changes come from dm-raid1's single worker, so an identical pending one
        // is that request: answer the newest copy instead of queueing the same operation again.
        if operation.changesState, let token = pending.first(where: { $0.value.header.luid == header.luid && $0.value.operation == operation })?.key {
            pending[token]?.header = header
            return []
        }
        let token = nextToken
        nextToken += 1
        pending[token] = PendingRequest(header: header, operation: operation)
        outbound.append(TokenedOperation(token: token, operation: operation))
        return []
    }

    /// STATUS_INFO of instance `luid`: `1 clustered-core` or `3 clustered-disk <maj:min> <A|D>`.
    func statusInfo(luid: UInt64) -> String {
        guard let attachment = instances[luid] ?? nil else { return "1 \(arguments.logType)" }
        let failed = replica?.log.disk?.failed ?? false
        return "3 \(arguments.logType) \(attachment.deviceNumber) \(failed ? "D" : "A")"
    }

    private func outOfRange(_ header: RequestHeader, _ type: RequestType, _ region: UInt64) -> [Directive] {
        [.reply(header, .failure(.invalidArgument)),
         notice(.error, "\(type) names region \(region), but the log has \(arguments.regionCount) regions; refused")]
    }

    /// Bookkeeping of our own kernel's operations once they are applied.
    mutating func noteLocalApplied(_ operation: ClusterOperation) {
        switch operation {
        case let .mark(regions), let .flush(marks: regions):
            for region in regions where region < localMarks.count { localMarks[region] = true }
        case let .clear(regions):
            for region in regions where region < localMarks.count { localMarks[region] = false }
        case .postsuspend:
            localMarks.fill(false)
        case .resume:
            latched = false
            if stateLost && !reconnectResumeSeen {
                reconnectResumeSeen = true
            } else {
                kernelHintMayBeFull = false
            }
        default:
            break
        }
        if let replica, replica.log.syncCount == replica.regionCount { latched = true }
    }

    /// Sends the answer of our own operation `token`, if a kernel request waits for it.
    mutating func answer(_ token: UInt64, _ reply: Reply) -> [Directive] {
        guard let request = pending.removeValue(forKey: token) else { return [] }
        return [.reply(request.header, reply)]
    }
}

/// A kernel request waiting for its operation to come back in the delivery order.
struct PendingRequest: Sendable {
    var header: RequestHeader
    var operation: ClusterOperation
}
