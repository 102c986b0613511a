extension ClusterLog {
    // MARK: Deliveries

    /// This log's part of a message delivered in the agreed order.
    mutating func receive(_ event: LogEvent, from sender: MemberID, quorum: QuorumView) -> [Directive] {
        switch phase {
        case .joining:
            return []
        case .awaitingState:
            if case let .chunk(chunk) = event, chunk.recipients.contains(where: { $0.member == me }) {
                return receiveChunk(chunk, quorum: quorum)
            }
            let tag = epoch
            withStateWait { $0.buffer.append((tag, .message(sender, event))) }
            return []
        case .active:
            return apply(event, from: sender, quorum: quorum)
        }
    }

    /// Applies a delivered event to the replica.
    mutating func apply(_ event: LogEvent, from sender: MemberID, quorum: QuorumView) -> [Directive] {
        switch event {
        case let .operations(list):
            var out: [Directive] = []
            for entry in list { out += applyOperation(entry.operation, token: entry.token, from: sender) }
            return out
        case let .chunk(chunk):
            guard chunk.index == chunk.count - 1 else { return [] }
            withReplica { $0.markSynced(chunk.recipients.map(\.member)) }
            return writerDuties()
        }
    }

    mutating func applyOperation(_ operation: ClusterOperation, token: UInt64, from sender: MemberID) -> [Directive] {
        let writer = isDiskWriter
        guard let (generationBefore, flushBefore) = replica.map({ ($0.generation, $0.flushNumber) }),
              let outcome = withReplica({ $0.apply(operation, from: sender, localIsWriter: writer) }) else { return [] }
        var out: [Directive] = []
        let mine = sender == me
        let firstReconnectResume = mine && operation == .resume && stateLost && !reconnectResumeSeen
        if mine { noteLocalApplied(operation) }
        // The kernel reconnected with the hint it cached before the daemon went away: if anything
        // needs resync, only a real resume makes it ask for resync work again.
        if firstReconnectResume, kernelHintMayBeFull, let replica, replica.log.syncCount < replica.regionCount, !instances.isEmpty {
            out.append(.restartRecovery(uuid: uuid))
        }
        switch outcome {
        case let .reply(reply):
            if mine { out += answer(token, reply) }
        case let .awaitFlush(number, writes):
            // A new flush number is the writer's to write; an earlier one is already on its way.
            if writer, number > flushBefore, let luid = deviceLUID {
                let write = flushWrites(writes, number: number, token: mine ? token : 0)
                out.append(.writeDevice(io(luid, write.ticket), write.writes))
            } else if mine {
                flushWaiters.append((number, token))
            }
        case .awaitDiskLoad:
            if mine { loadWaiters.append(token) }
            out += writerDuties()
        case .held:
            if mine { heldForRecovery.append(TokenedOperation(token: token, operation: operation)) }
        case .none:
            break
        }
        switch operation {
        case let .flushed(number, failed):
            // A confirmation the state refused (not from its writer, or of a flush it never issued).
            guard let acked = replica?.ackedFlush, acked >= number else { break }
            let ready = flushWaiters.filter { $0.number <= number }
            flushWaiters.removeAll { $0.number <= number }
            for waiter in ready { out += answer(waiter.token, failed ? .failure(.ioError) : .ok) }
            if failed && sender != me { out.append(notice(.error, "the disk writer \(sender) could not write the log device; answering -EIO, status shows D")) }
        case .diskLoaded:
            let waiters = loadWaiters
            loadWaiters.removeAll()
            // RESUMEs waiting for the load are answered once the image is back on the device.
            if let replica, replica.ackedFlush < replica.flushNumber {
                flushWaiters += waiters.map { (replica.flushNumber, $0) }
            } else {
                for token in waiters { out += answer(token, .ok) }
            }
            diskLoadInProgress = false
            out.append(notice(.info, "log device loaded: \(replica?.log.syncCount ?? 0)/\(arguments.regionCount) regions in sync"))
        case let .recoveryDone(generation) where replica?.generation == generation && generationBefore != generation:
            let priority = replica?.priority.count ?? 0
            out.append(notice(.info, "recovery generation \(generation) done: failed members' regions are out of sync and resynced first (\(priority) region(s))"))
            out += restartRecoveryForFailedRegions()
        default:
            break
        }
        if let replica, replica.log.syncCount == replica.regionCount { latched = true }
        releaseHeldRequests()
        return out
    }

    /// Failed members' regions were released to resync first (done, or a rebooted node's retire). A
    /// kernel that saw the mirror in sync cached in_sync_hint = region count and asks for resync
    /// work again only after a resume: restart our recovery.
    func restartRecoveryForFailedRegions() -> [Directive] {
        guard latched || kernelHintMayBeFull, !(replica?.priority.isEmpty ?? true), !instances.isEmpty else { return [] }
        return [.restartRecovery(uuid: uuid)]
    }

    /// Once no failed member may be on the surviving side of a split: our requests the state held
    /// go out again, in their order.
    mutating func releaseHeldRequests() {
        guard !heldForRecovery.isEmpty, let replica, replica.cutOff.isEmpty else { return }
        outbound += heldForRecovery
        heldForRecovery.removeAll()
    }

    // MARK: Configuration changes

    /// A configuration change of the group, in the agreed order.
    mutating func membershipChanged(_ change: MembershipChange, quorum: QuorumView) -> [Directive] {
        lastMembers = change.members
        switch phase {
        case .joining:
            guard change.members.contains(me) else { return [] }
            epoch = 1
            phase = .awaitingState(StateWait(holders: Set(change.members).subtracting([me])))
            if change.members == [me] { return found(quorum: quorum, why: "first member of the log") }
            return [notice(.info, "attached to the log with \(change.members.count - 1) other member(s); waiting for the state")]
        case .awaitingState:
            epoch += 1
            let tag = epoch
            // Every member that could hold the state left before it reached us, and the others
            // joined after us: the state is lost, and we found it for all of them (found by the
            // simulation: they all waited forever).
            let holdersGone = withStateWait { wait -> Bool in
                wait.buffer.append((tag, .change(change)))
                if let assembly = wait.assembly, change.left.contains(where: { $0.member == assembly.donor }) { wait.assembly = nil }
                wait.holders.subtract(change.left.map(\.member))
                return wait.holders.isEmpty
            } ?? false
            if change.members == [me] { return found(quorum: quorum, why: "every member that held the state left") }
            if holdersGone { return found(quorum: quorum, why: "every member that could hold the state left before it reached us", with: change) }
            return []
        case .active:
            return applyChange(change, quorum: quorum)
        }
    }

    mutating func applyChange(_ change: MembershipChange, quorum: QuorumView) -> [Directive] {
        var out: [Directive] = []
        guard let adoptions = withReplica({ $0.applyMembership(change) }) else { return [] }
        for (old, new) in adoptions.adopted {
            out.append(notice(.info, "member \(new) is the restarted daemon of failed member \(old) on the same node: it takes over its marks and resync work"))
        }
        for old in adoptions.retired {
            out.append(notice(.info, "failed member \(old)'s node booted again (a daemon with another boot id joined): its old kernel is gone, so its regions are resynced first without waiting for fencing"))
        }
        if !adoptions.retired.isEmpty { out += restartRecoveryForFailedRegions() }
        if !adoptions.needsSlot.isEmpty {
            withReplica { $0.recoverPrep() }
            for member in adoptions.needsSlot {
                withReplica { $0.recoverSlot(member) }
                let reason = change.left.first { $0.member == member }?.reason ?? .other(0)
                let held = replica?.log.marks.markCount(of: member) ?? 0
                out.append(notice(.warning, "member \(member) failed (\(reason)): its \(held) marked region(s) count as being written until recovery completes"))
            }
        }
        if let replica, !replica.cutOff.isEmpty, !adoptions.needsSlot.isEmpty {
            out.append(notice(.warning, "a failed member's node left the membership: requests of every member's kernel that change the log are held until its recovery is done (it may be on the side of a split that survives)"))
        }
        if replica?.donor == me, !(replica?.unsyncedAge.isEmpty ?? true) { out += sendSnapshot() }
        out += writerDuties()
        releaseHeldRequests()
        return out
    }

    /// Starts the state from scratch: this member is alone in the group, or (`change`) every member
    /// that could hold the state left before it reached us; then for everyone still in the group.
    mutating func found(quorum: QuorumView, why: String, with change: MembershipChange? = nil) -> [Directive] {
        guard quorum.quorate else {
            return [notice(.warning, "alone in the group but not quorate: waiting for quorum before starting the state")]
        }
        let wait: StateWait? = if case let .awaitingState(wait) = phase { wait } else { nil }
        let hadState = !localMarks.words.allSatisfy { $0 == 0 }
        let lost = stateLost || hadState || change != nil
        var state = ReplicatedLog(log: templateLog(stateLost: lost), founder: me)
        state.boots[me] = boot
        state.mutation = mutation
        if arguments.logType.hasLogDevice {
            switch arguments.syncMode {
            case .default:
                state.needsDiskLoad = true
            case .noSync where !lost:
                state.setInitialState(clean: Bitmap(count: arguments.regionCount, value: true))
            default:
                if lost { state.needsDiskLoad = true } else { state.setInitialState(clean: nil) }
            }
        }
        if let change {
            // The others joined after us: each has seen the changes since its own join.
            var ages: [MemberID: UInt64] = [:]
            for (tag, event) in wait?.buffer ?? [] {
                if case let .change(c) = event { for member in c.joined { ages[member] = epoch - tag + 1 } }
            }
            state.members = change.members
            for member in change.members where member != me {
                if let boot = change.boots[member] { state.boots[member] = boot }
                state.unsyncedAge[member] = ages[member] ?? epoch
                var slot: UInt32 = 1
                while state.slots.values.contains(slot) { slot += 1 }
                state.slots[member] = slot
            }
        }
        var out: [Directive] = [.notice(Notice(.info, uuid: uuid, "founded the log's state (\(why)): \(state.log.syncCount)/\(state.regionCount) regions in sync" + (state.needsDiskLoad ? ", loading the log device at resume" : ""), event: .foundedState))]
        phase = .active(state)
        // Only our own operations since the join still matter, unless others stay: then everything
        // delivered since our join is in the state we send them.
        for (_, event) in wait?.buffer ?? [] {
            if case let .message(sender, .operations(list)) = event, sender == me || change != nil {
                for entry in list { out += applyOperation(entry.operation, token: entry.token, from: sender) }
            }
        }
        out += afterStateInstalled()
        if change != nil { out += sendSnapshot() }
        return out
    }

    /// After a transfer or founding: re-mark what our kernel holds, and re-send requests whose
    /// answers were lost with the old membership.
    mutating func afterStateInstalled() -> [Directive] {
        // Not what our kernel already cleared: those clears are still pending and may be applied
        // before this mark (found by the simulation: the mark outlived the clear, held forever).
        var cleared = Bitmap(count: localMarks.count)
        for request in pending.values {
            if case let .clear(list) = request.operation { for region in list where region < cleared.count { cleared[region] = true } }
            if request.operation == .postsuspend { cleared.fill(true) }
        }
        var regions: [UInt64] = []
        var region = localMarks.firstIndex(of: true, from: 0)
        while region < localMarks.count {
            if !cleared[region] { regions.append(region) }
            region = localMarks.firstIndex(of: true, from: region + 1)
        }
        if !regions.isEmpty { outbound.insert(TokenedOperation(token: 0, operation: .mark(regions)), at: 0) }
        // Marks we took over from a failed daemon of our node that our kernel does not hold: a
        // fresh kernel (the node rebooted; its CTR was no reconnect) never wrote them, its
        // predecessor may have torn them. They go out of sync and are released (found by the
        // simulation: otherwise they stay held forever and are never resynced).
        if !stateLost, let held = replica?.log.marks.regions(of: me) {
            var orphans: [UInt64] = []
            var region = held.firstIndex(of: true, from: 0)
            while region < held.count {
                if !localMarks[region] { orphans.append(region) }
                region = held.firstIndex(of: true, from: region + 1)
            }
            if !orphans.isEmpty {
                outbound += orphans.map { TokenedOperation(token: 0, operation: .setRegionSync($0, inSync: false)) }
                outbound.append(TokenedOperation(token: 0, operation: .clear(orphans)))
            }
        }
        return writerDuties()
    }

    // MARK: Recovery

    /// Sends recover_done for the pending generation once every failed member is gone for sure
    /// (`isGone`: the DLM barrier's proof, see ``FencingBarrier``). Only a quorate member sends it.
    /// A member whose process died on a live node stays held until its restarted daemon joins and
    /// takes its marks over, or its node is fenced.
    mutating func maybeSendDone(quorum: QuorumView, isGone: (MemberID) -> Bool) {
        guard let replica, replica.recoveryPending, quorum.quorate else { return }
        let next = replica.generation + 1
        guard doneSentFor < next else { return }
        for member in replica.failed where !isGone(member) && mutation != .doneBeforeGrant { return }
        doneSentFor = next
        outbound.append(TokenedOperation(token: 0, operation: .recoveryDone(generation: next)))
    }

    /// Whether queued operations may be multicast now.
    func mayMulticast(_ quorum: QuorumView) -> Bool {
        (status != .joining || attachQueued) && quorum.quorate
    }

    /// The node left the ordering group (connection or quorum lost): the replica cannot be trusted
    /// any more. Unanswered requests are re-sent after the rejoin (every operation is idempotent for
    /// its sender).
    mutating func connectionLost() {
        phase = .joining
        attachQueued = false
        flushWaiters = []
        loadWaiters = []
        diskLoadInProgress = false
        // Disk actions of the old state: their results must not reach the next state as `flushed`
        // or `diskLoaded` (a stale `flushed(22)` confirmed flushes of a new state that were never
        // written; found by the simulation, seed 121). Requests waiting for them are re-sent below.
        diskTickets = [:]
        heldForRecovery = []
        let waiting = pending.sorted { $0.key < $1.key }
        outbound = waiting.map { TokenedOperation(token: $0.key, operation: $0.value.operation) }
    }
}
