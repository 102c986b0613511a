import Testing
@testable import MirrorLogCore

/// After a daemon restart the kernel reconnects (CTR with a NUL, then RESUME sent directly), keeping
/// the in_sync_hint it cached: the engine must ask the shell to restart recovery, once, and only
/// when something needs resync.
@Suite struct RecoveryRestartTests {
    @Test func reconnectedCoreLogAsksForRecoveryRestartOnce() {
        var h = Harness()
        #expect(h.reply(.constructor, ctr("131072 core 1024 nosync", nul: true)) == .ok)
        let first = h.send(.resume)
        #expect(first.action == .reply(.ok))
        #expect(first.restartRecoveryOf == h.uuid)
        // The resume that the suspend/resume itself causes must not ask again.
        _ = h.send(.presuspend)
        _ = h.send(.postsuspend)
        #expect(h.send(.resume).restartRecoveryOf == nil)
    }

    @Test func freshConstructorNeverAsks() {
        var h = Harness()
        #expect(h.reply(.constructor, ctr("131072 core 1024")) == .ok)
        #expect(h.send(.resume).restartRecoveryOf == nil)
    }

    @Test func reconnectedDiskLogInSyncOnDiskDoesNotAsk() {
        var h = Harness()
        #expect(h.send(.constructor, ctr("8192 disk 7:3 1024", nul: true)).action == .openDevice(luid: h.luid, .number(major: 7, minor: 3)))
        _ = h.engine.completeOpen(luid: h.luid, .success(DiskLogEngineTests.attachment()))
        let format = DiskLogFormat(regionCount: 8, blockSize: 512)
        #expect(h.send(.resume).action == .readDevice(luid: h.luid, byteCount: format.imageBytes))
        let image = DiskLogEngineTests.validImage(regions: 8, clean: Array(0 ..< 8), bytes: format.imageBytes)
        guard case .writeDevice = h.engine.completeRead(luid: h.luid, .success(image)).action else {
            Issue.record("expected the header write-back")
            return
        }
        let done = h.engine.completeWrite(luid: h.luid, .success(()))
        #expect(done.action == .reply(.ok))
        #expect(done.restartRecoveryOf == nil, "every region is clean on disk: nothing to resync")
    }

    @Test func reconnectedDiskLogWithDirtyRegionsAsksAfterTheWrite() {
        var h = Harness()
        _ = h.send(.constructor, ctr("8192 disk 7:3 1024", nul: true))
        _ = h.engine.completeOpen(luid: h.luid, .success(DiskLogEngineTests.attachment()))
        let format = DiskLogFormat(regionCount: 8, blockSize: 512)
        _ = h.send(.resume)
        let image = DiskLogEngineTests.validImage(regions: 8, clean: [0, 1, 2, 4, 5, 6, 7], bytes: format.imageBytes)
        let write = h.engine.completeRead(luid: h.luid, .success(image))
        #expect(write.restartRecoveryOf == nil, "not before the header is written")
        let done = h.engine.completeWrite(luid: h.luid, .success(()))
        #expect(done.restartRecoveryOf == h.uuid)
        #expect(h.syncCount() == 7)
    }
}
