import Testing
@testable import MirrorLogCore

/// `dmsetup reload` + `resume` (and every LVM table change): a new log instance with the same uuid and
/// a new luid is built while the old one serves; the old one is suspended, the new one resumed, and
/// the old one destroyed.
@Suite struct TableReloadTests {
    static let old: UInt64 = 0x10
    static let new: UInt64 = 0x20

    /// A core log at 16 regions with regions 0..<10 in sync, then reloaded.
    static func reloaded(newTable: String = "16384 core 1024", suspendOld: Bool = true) -> Harness {
        var h = Harness()
        h.luid = old
        #expect(h.reply(.constructor, ctr("16384 core 1024")) == .ok)
        #expect(h.reply(.resume) == .ok)
        for r: UInt64 in 0 ..< 10 {
            #expect(h.reply(.setRegionSync, .regionSync(region: r, inSync: true)) == .ok)
        }
        #expect(h.reply(.constructor, ctr(newTable), luid: new) == .ok)
        if suspendOld {
            #expect(h.reply(.presuspend) == .ok)
            #expect(h.reply(.postsuspend) == .ok)
        }
        #expect(h.reply(.resume, luid: new) == .ok)
        #expect(h.reply(.destructor) == .ok)
        h.luid = new
        return h
    }

    @Test func coreLogKeepsItsSyncStateAcrossAReload() {
        var h = Self.reloaded()
        #expect(h.syncCount() == 10)
        for r: UInt64 in 0 ..< 16 { #expect(h.inSync(r) == (r < 10)) }
        #expect(h.resyncWork() == .some(10))
    }

    @Test func forcedSyncReloadResyncsEverything() {
        var h = Self.reloaded(newTable: "16384 core 1024 sync")
        #expect(h.syncCount() == 0)
    }

    @Test func noStateTakenFromAnInstanceThatIsNotSuspended() {
        var h = Self.reloaded(suspendOld: false)
        #expect(h.syncCount() == 0)
    }

    @Test func noStateTakenAcrossADifferentGeometry() {
        var h = Self.reloaded(newTable: "32768 core 1024")
        #expect(h.syncCount() == 0)
    }

    @Test func diskLogReloadMayShareItsDevice() {
        var h = Harness()
        _ = h.send(.constructor, ctr("131072 disk 7:3 1024"), luid: 1)
        #expect(h.engine.completeOpen(luid: 1, .success(DiskLogEngineTests.attachment())).action == .reply(Reply(payload: .deviceName("7:3"))))
        _ = h.send(.constructor, ctr("131072 disk 7:3 1024"), luid: 2)
        #expect(h.engine.completeOpen(luid: 2, .success(DiskLogEngineTests.attachment())).action == .reply(Reply(payload: .deviceName("7:3"))))
        #expect(h.engine.logs.count == 2)
    }
}
