/// What a disk action of a clustered log was for.
enum DiskTicket: Sendable, Equatable {
    /// The writer writes flush `number`; `token` is our own FLUSH waiting for it (0 if none);
    /// `whole` says the write carries the whole image (not only the blocks changed since the last).
    case flush(number: UInt64, token: UInt64, whole: Bool)
    /// The first read of the device.
    case load
}

extension ClusterLog {
    /// As the disk writer: finish what a failed writer left (unconfirmed flushes, the first read).
    mutating func writerDuties() -> [Directive] {
        guard isDiskWriter, let luid = deviceLUID, let replica else { return [] }
        if replica.needsDiskLoad {
            guard !diskLoadInProgress, let bytes = replica.log.diskImageBytes else { return [] }
            diskLoadInProgress = true
            return [.readDevice(io(luid, issue(.load)), byteCount: bytes)]
        }
        if replica.ackedFlush < replica.flushNumber {
            // The whole image, from a copy: the dirty-block map is replicated state, and only the
            // writer runs this (clearing it here made the replicas differ; found by the simulation).
            return [.writeDevice(io(luid, issue(.flush(number: replica.flushNumber, token: 0, whole: true))), wholeImage())]
        }
        return []
    }

    /// Every block of the log device image as this replica has it (from a copy: the dirty-block
    /// map is replicated state).
    func wholeImage() -> [DiskWrite] {
        guard var image = replica?.log else { return [] }
        image.disk?.dirtyBlocks.fill(true)
        return image.pendingDiskWrites()
    }

    /// As the writer: the writes for flush `number`. After a failed write, every write carries the
    /// whole image until one succeeds: the blocks of the failed write are no longer dirty anywhere.
    mutating func flushWrites(_ writes: [DiskWrite], number: UInt64, token: UInt64) -> (writes: [DiskWrite], ticket: UInt64) {
        if unrepairedWriteFailure {
            return (wholeImage(), issue(.flush(number: number, token: token, whole: true)))
        }
        return (writes, issue(.flush(number: number, token: token, whole: false)))
    }

    /// Remembers what a disk action is for; the shell hands the ticket back with the result.
    mutating func issue(_ ticket: DiskTicket) -> UInt64 {
        nextDiskTicket += 1
        diskTickets[nextDiskTicket] = ticket
        return nextDiskTicket
    }

    /// A write of the log device finished: confirm it to the group, and answer our own FLUSH.
    mutating func completeWrite(ticket: UInt64, _ result: Result<Void, DeviceIOError>) -> [Directive] {
        guard case let .flush(number, token, whole) = diskTickets.removeValue(forKey: ticket) else { return [] }
        var failed: Bool
        var out: [Directive] = []
        switch result {
        case .success:
            // A partial write after a failed one does not make flush `number` durable: the failed
            // write's blocks are still missing (found by the simulation, seed 393).
            failed = unrepairedWriteFailure && !whole
            if whole { unrepairedWriteFailure = false }
        case let .failure(error):
            failed = true
            unrepairedWriteFailure = true
            out.append(notice(.error, "log device write failed (\(error)); answering -EIO, status shows D"))
        }
        outbound.append(TokenedOperation(token: 0, operation: .flushed(number: number, failed: failed)))
        if token != 0 { out += answer(token, failed ? .failure(.ioError) : .ok) }
        return out
    }

    /// The first read of the log device finished: tell the group what it holds.
    mutating func completeRead(ticket: UInt64, _ result: Result<[UInt8], DeviceIOError>) -> [Directive] {
        guard diskTickets.removeValue(forKey: ticket) == .load, let replica else { return [] }
        var clean: Bitmap?
        var generation: UInt64 = 0
        var out: [Directive] = []
        switch result {
        case let .success(image):
            let format = DiskLogFormat(regionCount: replica.regionCount, blockSize: replica.log.disk?.format.blockSize ?? 512)
            switch format.decode(image) {
            case let .success(decoded):
                clean = decoded.clean
                generation = decoded.generation
                if decoded.recordedRegions != replica.regionCount {
                    out.append(notice(.info, "log device recorded \(decoded.recordedRegions) regions, now \(replica.regionCount); regions beyond the old end will be resynced"))
                }
            case let .failure(error):
                out.append(notice(.warning, "log device holds no valid log (\(error)); resync issued for all \(replica.regionCount) regions"))
            }
        case let .failure(error):
            out.append(notice(.error, "cannot read the log device (\(error)); resync issued for all \(replica.regionCount) regions"))
        }
        outbound.append(TokenedOperation(token: 0, operation: .diskLoaded(clean: clean, generation: generation)))
        return out
    }
}
