/// The state of one clustered log that every member of its group holds identically, and the rules
/// that change it. Every member applies the same operations and configuration changes in the same
/// order, so every member computes the same answers; only the originator sends its answer to its
/// kernel.
///
/// The recovery cycle follows the DLM's (REFERENCE.md section 4): ``recoverPrep()``, then
/// ``recoverSlot(_:)`` per failed member, then ``recoverDone(generation:)`` once the failed members
/// can no longer write. Between slot and done, a failed member's marked regions and its resync region
/// count as possibly being written: IS_REMOTE_RECOVERING answers 1 for them and they are not handed
/// out. At done they become out of sync and are resynced before anything else.
public struct ReplicatedLog: Sendable {
    /// Bitmaps, marks and resync work (the single-node rules, with members).
    public internal(set) var log: MirrorLog
    /// Members of the group, ascending.
    public internal(set) var members: [MemberID] = []
    /// Members that hold the state (the others wait for a transfer).
    public internal(set) var synced: Set<MemberID> = []
    /// For members waiting for a transfer: configuration changes since they joined, their join included.
    public internal(set) var unsyncedAge: [MemberID: UInt64] = [:]
    /// DLM-style slots: from 1; members keep theirs; a newcomer takes the lowest free one.
    public internal(set) var slots: [MemberID: UInt32] = [:]
    /// Failed members whose recovery is prepared but not done, ascending.
    public internal(set) var failed: [MemberID] = []
    /// The boot id of each member's (and failed member's) kernel: a restarted daemon takes over a
    /// failed member's marks only if it serves the same kernel.
    public internal(set) var boots: [MemberID: UInt64] = [:]
    /// Failed members whose node left the membership (not only their process): they may be on the
    /// side of a split that survives. Until done, state changes from every member's kernel are held
    /// (``Outcome/held``), so the side that is fenced dies without writes the survivor never heard of.
    public internal(set) var cutOff: Set<MemberID> = []
    /// A recovery cycle is between prep and done.
    public internal(set) var recoveryPending = false
    /// Rises by one at every completed recovery. A `clustered-disk` log records it on its device
    /// (after the kernel's header), so a whole-cluster restart never goes back to an older one.
    public internal(set) var generation: UInt64 = 0 {
        didSet {
            guard generation != oldValue, log.disk != nil else { return }
            log.disk?.recoveryGeneration = generation
            log.disk?.dirtyBlocks[0] = true
        }
    }
    /// Regions possibly being written by failed members (until done), and the lowest of them.
    public internal(set) var suspects: Bitmap?
    var lowestSuspect: UInt64 = .max
    /// Regions of failed members to resync before any other, ascending.
    public internal(set) var priority: [UInt64] = []
    /// FLUSH operations applied (disk logs), and the highest one the writer confirmed.
    public internal(set) var flushNumber: UInt64 = 0
    public internal(set) var ackedFlush: UInt64 = 0
    /// A disk log whose device has not been read yet (the group was just founded).
    public internal(set) var needsDiskLoad = false
    /// A deliberately broken rule, for the simulation's mutation tests only (nil in every daemon).
    var mutation: ClusterMutation?

    public var regionCount: UInt64 { log.regionCount }

    /// A new state for a group founded by its first member.
    public init(log: MirrorLog, founder: MemberID) {
        self.log = log
        self.needsDiskLoad = log.disk != nil
        members = [founder]
        synced = [founder]
        slots = [founder: 1]
        writer = founder
    }

    /// The member that writes the shared log device. It keeps the role while it is a member, so
    /// two members never write at once (a member that finishes its transfer does not take over
    /// while the writer may have a write in flight); when it leaves, the lowest member holding the
    /// state takes over.
    public internal(set) var writer: MemberID?

    /// The disk writer (see ``writer``).
    public var diskWriter: MemberID? { writer }

    /// The member that sends the state to joiners: the lowest member holding the state.
    public var donor: MemberID? { members.first { synced.contains($0) } }

    /// Keeps ``writer`` a member that holds the state.
    mutating func electWriterIfNeeded() {
        if let writer, members.contains(writer), synced.contains(writer) { return }
        writer = members.first { synced.contains($0) }
    }

    /// The answer of an operation on the member that sent it.
    public enum Outcome: Sendable, Equatable {
        /// Answer now.
        case reply(Reply)
        /// Answer once the disk writer confirms flush `number`; `writes` (on the writer only) must
        /// reach the device first.
        case awaitFlush(number: UInt64, writes: [DiskWrite])
        /// Answer once the device was read (first resume of a disk log).
        case awaitDiskLoad
        /// Not applied: a failed member may be on the surviving side of a split (``cutOff``). The
        /// sender sends it again once the recovery is done.
        case held
        /// Nothing to answer (daemon-to-daemon operations).
        case none
    }

    // MARK: Operations

    /// Applies `operation` sent by `member`. `localIsWriter` says whether the member applying it
    /// writes the log device (so that only the writer builds disk writes).
    public mutating func apply(_ operation: ClusterOperation, from member: MemberID, localIsWriter: Bool) -> Outcome {
        if !cutOff.isEmpty, operation.isHeldDuringRecovery, mutation != .answerDuringSplit { return .held }
        switch operation {
        case let .mark(regions):
            guard log.firstOutOfRange(regions) == nil else { return .reply(.failure(.invalidArgument)) }
            log.mark(regions, by: member)
            return .reply(.ok)
        case let .clear(regions):
            guard log.firstOutOfRange(regions) == nil else { return .reply(.failure(.invalidArgument)) }
            log.clear(regions, by: member)
            if mutation == .clearIgnoresOtherMarks { for region in regions where log.sync[region] { log.setClean(region, true) } }
            return .reply(.ok)
        case let .flush(marks):
            guard log.firstOutOfRange(marks) == nil else { return .reply(.failure(.invalidArgument)) }
            log.mark(marks, by: member)
            // A state founded anew has not read the device yet, and the device may still record
            // these regions clean: the FLUSH waits until the loaded image and the marks are written
            // back (found by the simulation, seed 7555).
            if needsDiskLoad { return .awaitDiskLoad }
            return flush(localIsWriter: localIsWriter)
        case let .isClean(region):
            guard region < regionCount else { return .reply(.failure(.invalidArgument)) }
            return .reply(Reply(payload: .flag(log.isClean(region))))
        case let .inSync(region):
            guard region < regionCount else { return .reply(.failure(.invalidArgument)) }
            return .reply(Reply(payload: .flag(log.sync[region])))
        case .getResyncWork:
            return .reply(Reply(payload: .resyncWork(nextResyncWork(for: member))))
        case let .setRegionSync(region, inSync):
            guard region < regionCount else { return .reply(.failure(.invalidArgument)) }
            // Another member's leg failure does not end a resync in progress: the resyncer's copy
            // still runs (found by the simulation: the region was handed out a second time).
            let resyncer = log.recovering[region]
            log.setRegionSync(region, inSync: inSync, by: member)
            if let resyncer, resyncer != member { log.recovering[region] = resyncer }
            if inSync, let index = priority.firstIndex(of: region) { priority.remove(at: index) }
            if !inSync { log.resyncCursor = min(log.resyncCursor, region) }
            return .reply(.ok)
        case let .isRemoteRecovering(region):
            guard region < regionCount else { return .reply(.failure(.invalidArgument)) }
            let answer = remoteRecovery(of: region, askedBy: member)
            return .reply(Reply(payload: .remoteRecovering(isRecovering: answer.isRecovering, inSyncHint: answer.inSyncHint)))
        case .resume:
            // The member's resync work stays: after a suspend it was released at POSTSUSPEND, and
            // after a daemon restart the kernel is still copying the region it was given (the
            // restarted daemon adopted it), so handing it out again would copy it twice at once.
            log.resyncCursor = 0
            if needsDiskLoad { return .awaitDiskLoad }
            // After a failed log write, a resume starts afresh as the kernel's disk log does: the
            // whole image is written again, and status shows `A` once that write succeeds.
            if log.disk?.failed == true {
                log.resetDiskFailure()
                log.disk?.dirtyBlocks.fill(true)
            }
            // A founded image that is not on the device yet: the kernel's own disk log writes the
            // header and the clean bitmap at resume, so the device tells which regions are dirty
            // even if no write ever comes.
            if log.disk != nil, log.hasDirtyBlocks { return flush(localIsWriter: localIsWriter) }
            return .reply(.ok)
        case .postsuspend:
            // The member's kernel stopped I/O before POSTSUSPEND: its marks and resync work are
            // handed over without a recovery cycle.
            releaseMarks(of: member)
            releaseResyncWork(of: member)
            return flush(localIsWriter: localIsWriter)
        case let .flushed(number, failed):
            // Only the writer of this state confirms, and only flushes this state issued.
            guard member == writer, number <= flushNumber else { return .none }
            ackedFlush = max(ackedFlush, number)
            if failed {
                log.diskWriteFailed()
                log.disk?.dirtyBlocks.fill(true)
            }
            return .none
        case let .recoveryDone(generation):
            let before = self.generation
            recoverDone(generation: generation)
            // The new generation (and the regions now out of sync) go to the device at once.
            return self.generation != before && log.disk != nil ? flush(localIsWriter: localIsWriter) : .none
        case let .diskLoaded(clean, recorded):
            // What was read goes back at once: the header and the bitmap as the log is now (regions
            // found dirty are out of sync), before any RESUME waiting for the load is answered. The
            // generation never goes back to an older one than the device recorded.
            guard applyDiskLoad(clean) else { return .none }
            if recorded > generation { generation = recorded }
            return flush(localIsWriter: localIsWriter)
        case .attach, .detach:
            // Membership: ClusterNode turns these into configuration changes of the log.
            return .none
        }
    }

    private mutating func flush(localIsWriter: Bool) -> Outcome {
        guard log.disk != nil else { return .reply(.ok) }
        guard log.hasDirtyBlocks || (log.disk?.failed ?? false) else {
            // Nothing new to write, but the sender's marks may ride on a write still on its way:
            // answer once the writer confirmed it (found by the simulation, seed 16).
            return ackedFlush < flushNumber ? .awaitFlush(number: flushNumber, writes: []) : .reply(.ok)
        }
        flushNumber += 1
        let writes = localIsWriter ? log.pendingDiskWrites() : []
        // Every member forgets the dirty blocks at the same point; the writer has them in `writes`.
        log.diskWritesSucceeded()
        return .awaitFlush(number: flushNumber, writes: writes)
    }

    /// The next region for `member` to resync: failed members' regions first, never a region a
    /// failed member may still be writing, never one another member holds.
    mutating func nextResyncWork(for member: MemberID) -> UInt64? {
        if let held = log.recovering.lazy.filter({ $0.value == member }).map(\.key).min() { return held }
        if mutation == .resyncRegionTwice {
            let region = log.sync.firstIndex(of: false, from: 0)
            if region < regionCount, !isSuspect(region), log.recovering[region] != nil {
                log.recovering[region] = member
                return region
            }
        }
        for region in priority where log.recovering[region] == nil && !isSuspect(region) && !log.sync[region] {
            log.recovering[region] = member
            return region
        }
        let suspects = self.suspects
        return log.nextResyncWork(for: member) { suspects?[$0] ?? false }
    }

    @inline(__always)
    func isSuspect(_ region: UInt64) -> Bool { suspects?[region] ?? false }

    /// GET_SYNC_COUNT: regions a failed member may still be writing do not count as in sync until
    /// done. A count of region_count makes dm-raid1 set in_sync_hint to the region count and stop
    /// asking IS_REMOTE_RECOVERING (found by the simulation).
    public var reportedSyncCount: UInt64 {
        // Before the log device was read nothing is known to be in sync.
        if needsDiskLoad { return 0 }
        guard let suspects, lowestSuspect < regionCount else { return log.syncCount }
        var count = log.syncCount
        for (index, word) in suspects.words.enumerated() where word != 0 {
            count -= UInt64((word & log.sync.words[index]).nonzeroBitCount)
        }
        return count
    }

    /// IS_REMOTE_RECOVERING: recovering if another member resyncs the region or a failed member may be
    /// writing it. The hint never passes the lowest region that needs resync or may be written.
    mutating func remoteRecovery(of region: UInt64, askedBy member: MemberID) -> (isRecovering: Bool, inSyncHint: UInt64) {
        // A state founded anew whose log device is not read yet: any region may need resync (the
        // kernel holds the write and asks again; found by the simulation, seeds 486 and 9952).
        if needsDiskLoad { return (true, 0) }
        var recovering = isSuspect(region)
        if let owner = log.recovering[region], owner != member { recovering = true }
        let hint = min(log.lowestUnsyncedRegion(), lowestSuspect)
        if mutation == .hintPastDirtyRegion { return (recovering, min(hint + 1, regionCount)) }
        return (recovering, hint)
    }

    // MARK: Membership and the recovery cycle

    /// What a configuration change means for recovery.
    public struct MembershipEffect: Sendable, Equatable {
        /// Members that failed and need a recovery slot: those that did not leave cleanly, and clean
        /// leavers that still held marks or resync work.
        public var needsSlot: [MemberID] = []
        /// (failed member, its successor): a daemon restarted on the node of a failed member took
        /// over its marks and resync work.
        public var adopted: [(MemberID, MemberID)] = []
        /// Failed members whose node rebooted (a daemon with another boot id joined): their regions
        /// were released to resync first without waiting for fencing.
        public var retired: [MemberID] = []

        public static func == (a: Self, b: Self) -> Bool {
            a.needsSlot == b.needsSlot && a.adopted.map(\.0) == b.adopted.map(\.0) && a.adopted.map(\.1) == b.adopted.map(\.1) && a.retired == b.retired
        }
    }

    /// Applies a configuration change (membership, slots, transfer bookkeeping, adoption).
    public mutating func applyMembership(_ change: MembershipChange) -> MembershipEffect {
        var effect = MembershipEffect()
        for departure in change.left {
            let holds = log.marks.regions(of: departure.member).map { $0.firstIndex(of: true, from: 0) < regionCount } ?? false
            let works = log.recovering.values.contains(departure.member)
            if departure.reason.isFailure || holds || works {
                effect.needsSlot.append(departure.member)
                if departure.reason != .processDown && departure.reason != .left { cutOff.insert(departure.member) }
            } else {
                boots.removeValue(forKey: departure.member)
            }
            synced.remove(departure.member)
            unsyncedAge.removeValue(forKey: departure.member)
            slots.removeValue(forKey: departure.member)
        }
        members = change.members
        for member in unsyncedAge.keys { unsyncedAge[member, default: 0] += 1 }
        for member in change.joined where !synced.contains(member) {
            unsyncedAge[member] = 1
            var slot: UInt32 = 1
            let taken = Set(slots.values)
            while taken.contains(slot) { slot += 1 }
            slots[member] = slot
            // Only a joiner's boot id, which came with its ordered attach: every member knows the same.
            let boot = change.boots[member]
            // A daemon of a rebooted node: the failed members of its node served the old kernel,
            // which is gone, so their recovery needs no fencing: their regions are resynced first
            // now. Before the new member counts (it may even reuse a failed member's pid).
            for old in failed where old.nodeID == member.nodeID {
                if let oldBoot = boots[old], let boot, oldBoot != boot {
                    retire(old)
                    effect.retired.append(old)
                }
            }
            if let boot { boots[member] = boot }
            // The same member (a partition healed, corosync restarted under it) or a restarted daemon
            // on the same node: the node's kernel still holds the marks. Not after a reboot (above):
            // the new kernel never wrote them, and its daemon would hold them forever (found by the
            // simulation, class B: the fresh kernel's CTR looked like a reconnect). A failed member
            // whose boot id this state never learned (founded after a merge, before the census)
            // counts as the same kernel, as before boot ids.
            if let old = failed.first(where: { $0.nodeID == member.nodeID }) {
                adopt(old, by: member)
                effect.adopted.append((old, member))
            }
        }
        electWriterIfNeeded()
        return effect
    }

    /// The restarted daemon `successor` on the node of failed member `old` takes over its marks and
    /// resync work: the node's kernel still holds them and will clear them through the successor.
    mutating func adopt(_ old: MemberID, by successor: MemberID) {
        if let marked = log.marks.removeAll(of: old) {
            var region = marked.firstIndex(of: true, from: 0)
            while region < regionCount {
                log.marks.mark(region, by: successor)
                region = marked.firstIndex(of: true, from: region + 1)
            }
        }
        for (region, owner) in log.recovering where owner == old { log.recovering[region] = successor }
        failed.removeAll { $0 == old }
        cutOff.remove(old)
        boots.removeValue(forKey: old)
        rebuildSuspects()
        if failed.isEmpty && recoveryPending {
            recoveryPending = false
            generation += 1
        }
    }

    /// Failed member `old` served a kernel that is gone (its node rebooted): its marks and resync
    /// region go out of sync and are resynced first, as at done, for it alone.
    mutating func retire(_ old: MemberID) {
        resyncFirst(regionsOf: [old])
        failed.removeAll { $0 == old }
        cutOff.remove(old)
        boots.removeValue(forKey: old)
        log.resyncCursor = 0
        rebuildSuspects()
        if failed.isEmpty && recoveryPending {
            recoveryPending = false
            generation += 1
        }
    }

    /// Recomputes the suspect regions from the failed members that remain.
    mutating func rebuildSuspects() {
        guard !failed.isEmpty else {
            suspects = nil
            lowestSuspect = .max
            return
        }
        let remaining = failed
        failed = []
        suspects = nil
        for member in remaining { recoverSlot(member) }
    }

    /// The first state of a founded disk log that needs no read (`nosync`, or `sync`): `clean` regions
    /// are in sync (nil: none).
    mutating func setInitialState(clean: Bitmap?) {
        needsDiskLoad = true
        applyDiskLoad(clean)
    }

    /// recover_prep: a recovery cycle starts.
    public mutating func recoverPrep() {
        // Another failure while a recovery is pending restarts it under the next generation: a
        // done already sent covers only the members that had failed then (found by the
        // simulation: it released a member whose node was never fenced).
        if recoveryPending { generation += 1 }
        recoveryPending = true
    }

    /// recover_slot: `member` failed. Its marks and resync region stay held (as suspects) until done.
    public mutating func recoverSlot(_ member: MemberID) {
        guard !failed.contains(member) else { return }
        failed.append(member)
        failed.sort()
        var set = suspects ?? Bitmap(count: regionCount)
        if let marked = log.marks.regions(of: member) {
            for (index, word) in marked.words.enumerated() where word != 0 { set.setWord(index, set.words[index] | word) }
        }
        for (region, owner) in log.recovering where owner == member { set[region] = true }
        suspects = set
        lowestSuspect = set.firstIndex(of: true, from: 0)
        if lowestSuspect >= regionCount { lowestSuspect = .max }
        if mutation == .releaseMarksAtPrep, let marked = log.marks.removeAll(of: member) {
            var region = marked.firstIndex(of: true, from: 0)
            while region < regionCount {
                log.markOutOfSync(region)
                priority.append(region)
                region = marked.firstIndex(of: true, from: region + 1)
            }
            priority = Array(Set(priority)).sorted()
            suspects = nil
            lowestSuspect = .max
        }
    }

    /// recover_done for `generation` (the next one; anything else is a duplicate and ignored): the
    /// failed members' regions go out of sync and are resynced first.
    public mutating func recoverDone(generation: UInt64) {
        guard recoveryPending, generation == self.generation + 1 else { return }
        resyncFirst(regionsOf: failed)
        for member in failed where !members.contains(member) { boots.removeValue(forKey: member) }
        cutOff = []
        failed = []
        suspects = nil
        lowestSuspect = .max
        recoveryPending = false
        self.generation = generation
        log.resyncCursor = 0
    }

    /// The marks and resync regions of `gone` (failed members that can no longer write) go out of
    /// sync and to the front of the resync queue.
    private mutating func resyncFirst(regionsOf gone: [MemberID]) {
        var regions: [UInt64] = []
        for member in gone {
            if let marked = log.marks.removeAll(of: member) {
                var region = marked.firstIndex(of: true, from: 0)
                while region < regionCount {
                    regions.append(region)
                    region = marked.firstIndex(of: true, from: region + 1)
                }
            }
            for (region, owner) in log.recovering where owner == member {
                log.recovering.removeValue(forKey: region)
                regions.append(region)
            }
        }
        for region in regions { log.markOutOfSync(region) }
        priority = Array(Set(priority + regions)).sorted()
    }

    /// A transfer completed: these members now hold the state.
    public mutating func markSynced(_ recipients: [MemberID]) {
        for member in recipients where members.contains(member) {
            synced.insert(member)
            unsyncedAge.removeValue(forKey: member)
        }
        electWriterIfNeeded()
    }

    // MARK: Helpers

    private mutating func releaseMarks(of member: MemberID) {
        guard let marked = log.marks.removeAll(of: member) else { return }
        var region = marked.firstIndex(of: true, from: 0)
        while region < regionCount {
            if log.sync[region] && !log.marks.isHeld(region) { log.setClean(region, true) }
            region = marked.firstIndex(of: true, from: region + 1)
        }
    }

    private mutating func releaseResyncWork(of member: MemberID) {
        for (region, owner) in log.recovering where owner == member { log.recovering.removeValue(forKey: region) }
        log.resyncCursor = 0
    }

    @discardableResult
    private mutating func applyDiskLoad(_ loaded: Bitmap?) -> Bool {
        guard needsDiskLoad else { return false }
        needsDiskLoad = false
        let clean = loaded.flatMap { $0.count == regionCount ? $0 : nil } ?? Bitmap(count: regionCount)
        log.sync = clean
        log.syncCount = clean.popCount
        log.clean = clean
        log.lowestUnsyncedBound = 0
        log.resyncCursor = 0
        log.unmarkHeldRegionsClean()
        log.disk?.dirtyBlocks.fill(true)
        return true
    }
}
