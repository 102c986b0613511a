import Testing
@testable import MirrorLogCore

/// The engine driven with decoded requests, core logs (no device).
@Suite struct LogEngineTests {
    /// A harness with a resumed core log of `regions` regions (region size 2 sectors).
    static func coreLog(regions: UInt64 = 128, mode: String = "", regionSize: UInt32 = 1024) -> Harness {
        var h = Harness()
        let text = "\(regions * UInt64(regionSize)) core \(regionSize)" + (mode.isEmpty ? "" : " \(mode)")
        #expect(h.reply(.constructor, ctr(text)) == .ok)
        #expect(h.reply(.resume) == .ok)
        return h
    }

    // MARK: Lifecycle

    @Test func fullCoreLifecycle() {
        var h = Harness()
        let created = h.send(.constructor, ctr("131072 core 1024"))
        #expect(created.action == .reply(.ok))
        #expect(created.notices.contains { $0.level == .info && $0.message.contains("128 regions") })
        #expect(h.reply(.getRegionSize) == Reply(payload: .count(1024)))
        #expect(h.reply(.resume) == .ok)
        #expect(h.log?.phase == .running)
        #expect(h.reply(.statusInfo) == Reply(payload: .text("1 core")))
        #expect(h.reply(.statusTable) == Reply(payload: .text("core 1 1024")))
        // default sync on a new core log: everything needs resync
        #expect(h.syncCount() == 0)
        #expect(h.inSync(0) == false)
        #expect(h.isClean(0) == false)
        // a write cycle
        #expect(h.reply(.markRegion, regions([3, 4])) == .ok)
        #expect(h.reply(.flush) == .ok)
        #expect(h.isClean(3) == false)
        #expect(h.reply(.clearRegion, regions([3, 4])) == .ok)
        #expect(h.reply(.flush) == .ok)
        #expect(h.isClean(3) == false, "not in sync yet, so not clean")
        // recovery of region 3
        var handed: [UInt64] = []
        while case let .some(.some(r)) = h.resyncWork() { handed.append(r); #expect(h.reply(.setRegionSync, .regionSync(region: r, inSync: true)) == .ok) }
        #expect(handed == Array(0 ..< 128))
        #expect(h.syncCount() == 128)
        #expect(h.isClean(3) == true)
        #expect(h.inSync(127) == true)
        // suspend, resume, destroy
        #expect(h.reply(.presuspend) == .ok)
        #expect(h.log?.phase == .presuspended)
        #expect(h.reply(.postsuspend) == .ok)
        #expect(h.log?.phase == .suspended)
        #expect(h.reply(.resume) == .ok)
        #expect(h.syncCount() == 128, "a core log keeps its state across suspend/resume")
        let destroyed = h.send(.destructor)
        #expect(destroyed.action == .reply(.ok))
        #expect(h.log == nil)
        #expect(h.reply(.getSyncCount).error == ESRCH)
    }

    @Test func nosyncCoreLogStartsInSyncAndClean() {
        var h = Self.coreLog(regions: 100, mode: "nosync")
        #expect(h.syncCount() == 100)
        for r: UInt64 in [0, 50, 99] {
            #expect(h.inSync(r) == true)
            #expect(h.isClean(r) == true)
        }
        #expect(h.resyncWork() == .some(nil))
        #expect(h.reply(.statusTable) == Reply(payload: .text("core 2 1024 nosync")))
    }

    @Test func syncCoreLogStartsOutOfSync() {
        var h = Self.coreLog(regions: 10, mode: "sync")
        #expect(h.syncCount() == 0)
        #expect(h.inSync(9) == false)
        #expect(h.isClean(9) == false)
    }

    // MARK: Resync work and sync count

    // Like dm-raid1, each member asks for new work only after reporting on its previous region.

    @Test func resyncWorkHandsOutEachRegionOnce() {
        var h = Self.coreLog(regions: 5)
        #expect(h.resyncWork(from: memberA) == .some(0))
        #expect(h.resyncWork(from: memberB) == .some(1))
        #expect(h.resyncWork(from: memberC) == .some(2))
        #expect(h.syncCount() == 0)
        #expect(h.reply(.setRegionSync, .regionSync(region: 1, inSync: true), from: memberB) == .ok)
        #expect(h.syncCount() == 1)
        #expect(h.resyncWork(from: memberB) == .some(3))
        #expect(h.reply(.setRegionSync, .regionSync(region: 3, inSync: true), from: memberB) == .ok)
        #expect(h.resyncWork(from: memberB) == .some(4))
        #expect(h.reply(.setRegionSync, .regionSync(region: 4, inSync: true), from: memberB) == .ok)
        #expect(h.resyncWork(from: memberB) == .some(nil), "0 and 2 are being resynced by A and C")
        #expect(h.reply(.setRegionSync, .regionSync(region: 0, inSync: true), from: memberA) == .ok)
        #expect(h.resyncWork(from: memberA) == .some(nil))
        #expect(h.reply(.setRegionSync, .regionSync(region: 2, inSync: true), from: memberC) == .ok)
        #expect(h.syncCount() == 5)
        // setting a region in sync twice does not count twice
        #expect(h.reply(.setRegionSync, .regionSync(region: 4, inSync: true)) == .ok)
        #expect(h.syncCount() == 5)
        #expect(h.reply(.setRegionSync, .regionSync(region: 4, inSync: false)) == .ok)
        #expect(h.syncCount() == 4)
        #expect(h.inSync(4) == false)
        #expect(h.isClean(4) == false)
    }

    @Test func failedRecoveryIsNotRetriedBeforeResume() {
        // As the kernel's own logs: the search only moves forward until the next resume.
        var h = Self.coreLog(regions: 3)
        #expect(h.resyncWork() == .some(0))
        #expect(h.reply(.setRegionSync, .regionSync(region: 0, inSync: false)) == .ok)
        #expect(h.resyncWork() == .some(1))
        #expect(h.reply(.setRegionSync, .regionSync(region: 1, inSync: true)) == .ok)
        #expect(h.resyncWork() == .some(2))
        #expect(h.reply(.setRegionSync, .regionSync(region: 2, inSync: true)) == .ok)
        #expect(h.resyncWork() == .some(nil))
        #expect(h.reply(.resume) == .ok)
        #expect(h.resyncWork() == .some(0))
    }

    @Test func resumeRestartsResyncSearch() {
        var h = Self.coreLog(regions: 4)
        #expect(h.resyncWork(from: memberA) == .some(0))
        #expect(h.resyncWork(from: memberB) == .some(1))
        #expect(h.reply(.presuspend) == .ok)
        #expect(h.reply(.postsuspend) == .ok)
        #expect(h.reply(.resume) == .ok)
        // work handed out before the suspend was dropped; recovery starts again from region 0
        #expect(h.resyncWork() == .some(0))
    }

    @Test func resyncWorkSkipsInSyncRegions() {
        var h = Self.coreLog(regions: 200)
        for r: UInt64 in 0 ..< 200 where r != 70 && r != 150 {
            #expect(h.reply(.setRegionSync, .regionSync(region: r, inSync: true)) == .ok)
        }
        #expect(h.syncCount() == 198)
        #expect(h.resyncWork() == .some(70))
        _ = h.reply(.setRegionSync, .regionSync(region: 70, inSync: true))
        #expect(h.resyncWork() == .some(150))
        _ = h.reply(.setRegionSync, .regionSync(region: 150, inSync: true))
        #expect(h.resyncWork() == .some(nil))
        #expect(h.syncCount() == 200)
    }

    // MARK: IS_REMOTE_RECOVERING hint

    @Test func hintIsLowestOutOfSyncRegion() {
        var h = Self.coreLog(regions: 10)
        #expect(h.remoteRecovering(5)?.1 == 0)
        for r: UInt64 in 0 ..< 4 { _ = h.reply(.setRegionSync, .regionSync(region: r, inSync: true)) }
        #expect(h.remoteRecovering(5)?.1 == 4)
        _ = h.reply(.setRegionSync, .regionSync(region: 6, inSync: true))
        #expect(h.remoteRecovering(9)?.1 == 4)
        for r: UInt64 in 4 ..< 10 { _ = h.reply(.setRegionSync, .regionSync(region: r, inSync: true)) }
        #expect(h.remoteRecovering(9)?.1 == 10, "all in sync: hint == region_count")
        #expect(h.remoteRecovering(9)?.0 == false)
        // A region going out of sync again pulls the hint back down.
        _ = h.reply(.setRegionSync, .regionSync(region: 2, inSync: false))
        #expect(h.remoteRecovering(9)?.1 == 2)
        _ = h.reply(.setRegionSync, .regionSync(region: 7, inSync: false))
        #expect(h.remoteRecovering(0)?.1 == 2)
        _ = h.reply(.setRegionSync, .regionSync(region: 2, inSync: true))
        #expect(h.remoteRecovering(0)?.1 == 7)
    }

    @Test func remoteRecoveringOnlyForOtherMembers() {
        var h = Self.coreLog(regions: 10)
        #expect(h.resyncWork(from: memberA) == .some(0))
        #expect(h.remoteRecovering(0, from: memberB)?.0 == true)
        #expect(h.remoteRecovering(0, from: memberA)?.0 == false, "its own recovery is not remote")
        #expect(h.remoteRecovering(1, from: memberB)?.0 == false)
        #expect(h.remoteRecovering(0, from: memberB)?.1 == 0)
        _ = h.reply(.setRegionSync, .regionSync(region: 0, inSync: true), from: memberA)
        #expect(h.remoteRecovering(0, from: memberB)! == (false, 1))
    }

    // MARK: Marks and clean

    @Test func markIsIdempotentPerMember() {
        var h = Self.coreLog(regions: 8, mode: "nosync")
        #expect(h.reply(.markRegion, regions([2]), from: memberA) == .ok)
        #expect(h.reply(.markRegion, regions([2]), from: memberA) == .ok)
        #expect(h.reply(.markRegion, regions([2]), from: memberB) == .ok)
        #expect(h.isClean(2) == false)
        #expect(h.reply(.clearRegion, regions([2]), from: memberA) == .ok)
        #expect(h.isClean(2) == false, "memberB still holds region 2")
        #expect(h.reply(.clearRegion, regions([2]), from: memberB) == .ok)
        #expect(h.isClean(2) == true, "one clear undoes any number of marks by the same member")
        #expect(h.isClean(3) == true)
    }

    @Test func clearByNonHolderChangesNothing() {
        var h = Self.coreLog(regions: 8, mode: "nosync")
        _ = h.reply(.markRegion, regions([1]), from: memberA)
        #expect(h.reply(.clearRegion, regions([1]), from: memberB) == .ok)
        #expect(h.isClean(1) == false)
    }

    @Test func cleanOnlyWhenUnheldAndInSync() {
        var h = Self.coreLog(regions: 8)
        _ = h.reply(.markRegion, regions([5]))
        _ = h.reply(.setRegionSync, .regionSync(region: 5, inSync: true))
        #expect(h.isClean(5) == false, "held")
        _ = h.reply(.clearRegion, regions([5]))
        #expect(h.isClean(5) == true)
        _ = h.reply(.setRegionSync, .regionSync(region: 5, inSync: false))
        #expect(h.isClean(5) == false, "out of sync")
        _ = h.reply(.setRegionSync, .regionSync(region: 5, inSync: true))
        #expect(h.isClean(5) == true)
    }

    @Test func integratedFlushAppliesMarks() {
        var h = Self.coreLog(regions: 16, mode: "nosync")
        #expect(h.isClean(9) == true)
        #expect(h.reply(.flush, regions([9, 10])) == .ok)
        #expect(h.isClean(9) == false)
        #expect(h.isClean(10) == false)
        #expect(h.isClean(11) == true)
        #expect(h.log?.marks.regions(of: .local)?[9] == true)
        #expect(h.reply(.clearRegion, regions([9, 10])) == .ok)
        #expect(h.isClean(9) == true)
    }

    // MARK: Out of range, unknown logs

    static let outOfRange: [(RequestType, @Sendable (UInt64) -> RequestPayload)] = [
        (.isClean, { .region($0) }),
        (.inSync, { .region($0) }),
        (.isRemoteRecovering, { .region($0) }),
        (.markRegion, { regions([0, $0]) }),
        (.clearRegion, { regions([1, $0]) }),
        (.flush, { regions([2, $0]) }),
        (.setRegionSync, { .regionSync(region: $0, inSync: true) }),
    ]

    @Test(arguments: outOfRange.indices, [UInt64(16), 17, 1 << 40, .max])
    func outOfRangeRegionIsEINVALAndChangesNothing(index: Int, region: UInt64) {
        let (type, payload) = Self.outOfRange[index]
        var h = Self.coreLog(regions: 16, mode: "nosync")
        _ = h.reply(.markRegion, regions([1]))
        let before = h.log!
        let output = h.send(type, payload(region))
        #expect(output.action == .reply(Reply(error: EINVAL, payload: .none)))
        #expect(output.notices.contains { $0.level == .error && $0.message.contains("\(region)") })
        let after = h.log!
        #expect(after.clean == before.clean)
        #expect(after.sync == before.sync)
        #expect(after.syncCount == before.syncCount)
        #expect(after.marks == before.marks)
        #expect(after.recovering == before.recovering)
        // last valid region still works
        #expect(h.isClean(15) == true)
        #expect(h.isClean(0) == true, "the in-range part of a refused batch was not applied")
    }

    @Test(arguments: RequestType.allCases.filter { $0 != .constructor && $0 != .destructor })
    func unknownLuidIsESRCH(type: RequestType) {
        var h = Self.coreLog(regions: 16)
        let output = h.send(type, CodecTests.samplePayload(type), luid: 999)
        guard case let .reply(reply) = output.action else {
            Issue.record("expected a reply, got \(output.action)")
            return
        }
        #expect(reply.error == ESRCH)
        // The kernel keeps the reply's data_size as its buffer size for the retry after reconnecting:
        // the -ESRCH must carry as many bytes as the real answer will (dm-log-userspace-base.c).
        let kernelReplySize: [RequestType: Int] = [.isClean: 8, .inSync: 8, .getRegionSize: 8, .getSyncCount: 8, .getResyncWork: 16, .isRemoteRecovering: 16]
        #expect(reply.payload.encodedSize == kernelReplySize[type, default: 0])
        var bytes: [UInt8] = []
        WireEncoder.encodeReply(to: makeHeader(rawType: type.rawValue), reply, into: &bytes)
        #expect(bytes.dropFirst(WireLayout.framingSize).allSatisfy { $0 == 0 }, "placeholder payload is zeroed")
        #expect(h.engine.logs.count == 1)
    }

    @Test func destructorOfUnknownLogIsOK() {
        var h = Harness()
        #expect(h.reply(.destructor, luid: 4242) == .ok)
        #expect(h.engine.logs.isEmpty)
    }

    @Test func wrongUUIDForKnownLuidIsRefused() {
        var h = Self.coreLog(regions: 16, mode: "nosync")
        #expect(h.reply(.markRegion, regions([1]), uuid: "LVM-other").error == EINVAL)
        #expect(h.isClean(1) == true)
        #expect(h.reply(.destructor, uuid: "LVM-other").error == EINVAL)
        #expect(h.log != nil)
    }

    // MARK: Constructor variants

    @Test func constructorOfKnownLogKeepsState() {
        var h = Self.coreLog(regions: 16)
        _ = h.reply(.setRegionSync, .regionSync(region: 3, inSync: true))
        _ = h.reply(.markRegion, regions([4]))
        let before = h.log!
        let output = h.send(.constructor, ctr("32768 core 1024"))
        #expect(output.action == .reply(.ok))
        #expect(output.notices.contains { $0.message.contains("state kept") })
        #expect(h.log!.sync == before.sync)
        #expect(h.log!.marks == before.marks)
        #expect(h.syncCount() == 1)
        // and the same for the reconnect form (trailing NUL)
        #expect(h.reply(.constructor, ctr("32768 core 1024", nul: true)) == .ok)
        #expect(h.syncCount() == 1)
        #expect(h.inSync(3) == true)
    }

    @Test func constructorOfKnownLuidWithOtherUUIDIsEEXIST() {
        var h = Self.coreLog(regions: 16)
        #expect(h.reply(.constructor, ctr("32768 core 1024"), uuid: "LVM-other").error == EEXIST)
        #expect(h.log?.uuid == "LVM-harness")
    }

    /// A table reload builds a second instance of the same uuid under a new luid while the first serves.
    @Test func constructorOfKnownUUIDWithOtherLuidIsATableReload() {
        var h = Self.coreLog(regions: 16)
        #expect(h.reply(.constructor, ctr("16384 core 1024"), luid: 77) == .ok)
        #expect(h.engine.logs[77] != nil)
        #expect(h.engine.logs[h.luid] != nil)
    }

    @Test func reconnectConstructorOfNosyncCoreLogResyncsEverything() {
        var h = Harness()
        let output = h.send(.constructor, ctr("16384 core 1024 nosync", nul: true))
        #expect(output.action == .reply(.ok))
        #expect(output.notices.contains { $0.message.contains("resynced") })
        #expect(h.reply(.resume) == .ok)
        #expect(h.syncCount() == 0)
        for r: UInt64 in 0 ..< 16 {
            #expect(h.inSync(r) == false)
            #expect(h.isClean(r) == false)
        }
        #expect(h.resyncWork() == .some(0))
    }

    @Test(arguments: ["131072 clustered-core 1024", "131072 clustered-disk 253:2 1024"])
    func clusteredTypesRefusedWithoutClusterLayer(text: String) {
        var h = Harness()
        let output = h.send(.constructor, ctr(text))
        #expect(output.action == .reply(Reply(error: EINVAL, payload: .none)))
        #expect(output.notices.contains { $0.level == .error && $0.message.contains("cluster layer") })
        #expect(h.engine.logs.isEmpty)
    }

    @Test(arguments: ["", "131072", "131072 core 1000", "131072 core 1024 fast", "0 core 2"])
    func badConstructorStringIsEINVAL(text: String) {
        var h = Harness()
        let output = h.send(.constructor, ctr(text))
        #expect(output.action == .reply(Reply(error: EINVAL, payload: .none)))
        #expect(output.notices.contains { $0.level == .error && $0.message.contains("constructor refused") })
        #expect(h.engine.logs.isEmpty)
    }

    @Test func emptyUUIDIsRefused() {
        var h = Harness()
        #expect(h.reply(.constructor, ctr("131072 core 1024"), uuid: "").error == EINVAL)
        #expect(h.engine.logs.isEmpty)
    }

    @Test func twoLogsAreIndependent() {
        var h = Harness()
        #expect(h.reply(.constructor, ctr("4096 core 1024 nosync"), luid: 1, uuid: "LVM-one") == .ok)
        #expect(h.reply(.constructor, ctr("8192 core 1024"), luid: 2, uuid: "LVM-two") == .ok)
        #expect(h.reply(.getSyncCount, luid: 1, uuid: "LVM-one") == Reply(payload: .count(4)))
        #expect(h.reply(.getSyncCount, luid: 2, uuid: "LVM-two") == Reply(payload: .count(0)))
        #expect(h.reply(.markRegion, regions([0]), luid: 1, uuid: "LVM-one") == .ok)
        #expect(h.reply(.isClean, .region(0), luid: 1, uuid: "LVM-one") == Reply(payload: .flag(false)))
        #expect(h.reply(.destructor, luid: 2, uuid: "LVM-two") == .ok)
        #expect(h.reply(.getSyncCount, luid: 1, uuid: "LVM-one") == Reply(payload: .count(4)))
    }

    @Test func coreLogHasNoInSyncLatch() {
        var h = Self.coreLog(regions: 4, mode: "nosync")
        _ = h.reply(.setRegionSync, .regionSync(region: 2, inSync: false))
        #expect(h.inSync(2) == false)
    }
}

/// Requests the kernel re-sends after a 15 s timeout (with a new seq; the late reply to the old seq is
/// dropped by the kernel).
@Suite struct KernelResendTests {
    /// dm-raid1 recovers one region at a time per node (MAX_RECOVERY 1), so a member asking for work
    /// while it still holds a region lost the earlier reply. cmirrord hands the same region out again
    /// ("Re-requesting work"). The engine hands out the next one instead, and the first stays in
    /// `recovering`, never resynced until the next resume: the mirror cannot reach full sync.
    @Test func resentGetResyncWorkGetsTheSameRegion() {
        var h = LogEngineTests.coreLog(regions: 4)
        #expect(h.resyncWork() == .some(0))        // this reply is lost
        #expect(h.resyncWork() == .some(0))    // the kernel's re-send
    }

    /// Whatever it answers to a re-send, every region must eventually be resynced without a resume.
    @Test func lostResyncWorkReplyDoesNotBlockFullSync() {
        var h = LogEngineTests.coreLog(regions: 4)
        _ = h.resyncWork()                          // reply lost
        while case let .some(.some(r)) = h.resyncWork() {
            _ = h.reply(.setRegionSync, .regionSync(region: r, inSync: true))
        }
        #expect(h.syncCount() == 4)
    }
}

@Suite struct UUIDBytesTests {
    /// The engine stores the uuid as a `String` (invalid UTF-8 replaced by U+FFFD) but compares later
    /// requests by bytes. A CTR with a non-UTF-8 uuid must then either be refused, or leave a usable log.
    @Test func nonUTF8UUIDIsRefusedOrUsable() {
        var engine = LogEngine()
        let uuid: [UInt8] = Array("LVM-".utf8) + [0xFF, 0x41]
        func request(_ type: RequestType, _ payload: RequestPayload) -> KernelRequest {
            wire(KernelRequest(header: RequestHeader(luid: 3, uuidBytes: uuid[...], version: 3, seq: 1, rawRequestType: type.rawValue), type: type, payload: payload))
        }
        let created = engine.handle(request(.constructor, ctr("4096 core 1024")))
        guard created.action == .reply(.ok) else { return }   // refused: consistent
        #expect(engine.handle(request(.getSyncCount, .none)).action == .reply(Reply(payload: .count(0))))
    }
}
