import Testing
@testable import MirrorLogCore

/// The engine's disk logs: the device actions (open, read, write) and what they carry.
@Suite struct DiskLogEngineTests {
    static func attachment(blockSize: Int = 512, size: UInt64 = 1 << 20) -> DeviceAttachment {
        DeviceAttachment(major: 7, minor: 3, blockSize: blockSize, sizeBytes: size)
    }

    static func validImage(regions: UInt64, clean: [UInt64], bytes: Int) -> [UInt8] {
        DiskFormatTests.image(regions: regions, clean: clean, bytes: bytes)
    }

    /// CTR + open for `text`; returns the harness and the CTR reply.
    static func construct(_ text: String, blockSize: Int = 512, version: UInt32 = 3, nul: Bool = false, device: LogDeviceSpec = .number(major: 7, minor: 3)) -> (Harness, [Directive]) {
        var h = Harness()
        h.version = version
        let open = h.send(.constructor, ctr(text, nul: nul))
        #expect(open.action == .openDevice(luid: h.luid, device))
        #expect(h.log == nil, "the log exists only once its device is open")
        let done = h.engine.completeOpen(luid: h.luid, .success(attachment(blockSize: blockSize)))
        return (h, done)
    }

    /// CTR, open, RESUME, read `image` (nil: the read fails), write back. Returns the writes of the resume.
    static func resumedLog(_ text: String = "131072 disk 7:3 1024", blockSize: Int = 512, image: [UInt8]?) -> (Harness, [DiskWrite]) {
        var (h, _) = construct(text, blockSize: blockSize)
        let format = DiskLogFormat(regionCount: h.log!.regionCount, blockSize: blockSize)
        #expect(h.send(.resume).action == .readDevice(luid: h.luid, byteCount: format.imageBytes))
        let read: Result<[UInt8], DeviceIOError> = image.map { .success($0) } ?? .failure(DeviceIOError(errno: 5, operation: "read 1536 bytes at 0"))
        let out = h.engine.completeRead(luid: h.luid, read)
        guard case let .writeDevice(luid, writes) = out.action else {
            Issue.record("expected a write after the resume read, got \(out.action)")
            return (h, [])
        }
        #expect(luid == h.luid)
        #expect(h.engine.completeWrite(luid: h.luid, .success(())).action == .reply(.ok))
        return (h, writes)
    }

    /// Sends FLUSH and returns the writes it asks for (empty if it answered at once).
    static func flushWrites(_ h: inout Harness, _ payload: RequestPayload = .none, result: Result<Void, DeviceIOError> = .success(())) -> ([DiskWrite], Reply?) {
        let out = h.send(.flush, payload)
        switch out.action {
        case let .reply(reply):
            return ([], reply)
        case let .writeDevice(luid, writes):
            #expect(luid == h.luid)
            guard case let .reply(reply) = h.engine.completeWrite(luid: h.luid, result).action else { return (writes, nil) }
            return (writes, reply)
        default:
            Issue.record("unexpected \(out.action)")
            return ([], nil)
        }
    }

    // MARK: Constructor replies

    @Test func version2And3ReplyWithDeviceName() {
        for version: UInt32 in [2, 3] {
            let (_, done) = Self.construct("131072 disk 7:3 1024", version: version)
            #expect(done.action == .reply(Reply(payload: .deviceName("7:3"))))
        }
    }

    @Test func version1RepliesWithoutPayload() {
        let (h, done) = Self.construct("131072 disk 7:3 1024", version: 1)
        #expect(done.action == .reply(.ok))
        #expect(h.log?.regionCount == 128)
    }

    @Test func reconnectRepliesWithoutPayload() {
        let (_, done) = Self.construct("131072 disk 7:3 1024", version: 3, nul: true)
        #expect(done.action == .reply(.ok))
    }

    @Test func pathDeviceIsOpenedByPathAndNamedByNumber() {
        let (h, done) = Self.construct("131072 disk /dev/loop3 1024 nosync", device: .path("/dev/loop3"))
        #expect(done.action == .reply(Reply(payload: .deviceName("7:3"))))
        #expect(h.log?.arguments.syncMode == .noSync)
    }

    @Test func openFailureRefusesConstructor() {
        var h = Harness()
        _ = h.send(.constructor, ctr("131072 disk 7:3 1024"))
        let out = h.engine.completeOpen(luid: h.luid, .failure(DeviceIOError(errno: 2, operation: "open 7:3")))
        #expect(out.action == .reply(Reply(error: EINVAL, payload: .none)))
        #expect(out.notices.contains { $0.level == .error })
        #expect(h.log == nil)
    }

    @Test func deviceTooSmallIsClosedAndRefused() {
        var h = Harness()
        _ = h.send(.constructor, ctr("131072 disk 7:3 1024"))
        let out = h.engine.completeOpen(luid: h.luid, .success(Self.attachment(blockSize: 512, size: 1024)))
        #expect(out.action == .closeDevice(luid: h.luid, then: Reply(error: EINVAL, payload: .none)))
        #expect(h.log == nil)
        // exactly large enough is fine
        var g = Harness()
        _ = g.send(.constructor, ctr("131072 disk 7:3 1024"))
        #expect(g.engine.completeOpen(luid: g.luid, .success(Self.attachment(blockSize: 512, size: 1536))).action == .reply(Reply(payload: .deviceName("7:3"))))
    }

    /// A stray open result (no constructor waits) answers nobody: the device is closed, with an error.
    @Test func completeOpenWithoutConstructorClosesTheDevice() {
        var engine = LogEngine()
        let out = engine.completeOpen(luid: 5, .success(Self.attachment()))
        #expect(out.contains(.closeDevice(luid: 5)))
        #expect(!out.contains { if case .reply = $0 { true } else { false } })
        #expect(out.notices.contains { $0.level == .error })
    }

    // MARK: Resume from the device

    @Test func validImageMakesCleanRegionsInSync() {
        let clean: [UInt64] = Array(0 ..< 128).filter { $0 != 5 && $0 != 100 }
        var (h, writes) = Self.resumedLog(image: Self.validImage(regions: 128, clean: clean, bytes: 1536))
        #expect(h.syncCount() == 126)
        #expect(h.inSync(5) == false)
        #expect(h.inSync(100) == false)
        #expect(h.inSync(6) == true)
        #expect(h.isClean(6) == true)
        #expect(h.isClean(5) == false)
        #expect(h.resyncWork() == .some(5))
        _ = h.reply(.setRegionSync, .regionSync(region: 5, inSync: true))
        #expect(h.resyncWork() == .some(100))
        _ = h.reply(.setRegionSync, .regionSync(region: 100, inSync: true))
        #expect(h.resyncWork() == .some(nil))
        // The resume rewrites the whole image (header included), matching memory.
        let format = DiskLogFormat(regionCount: 128, blockSize: 512)
        var bitmap = Bitmap(count: 128)
        for r in clean { bitmap[r] = true }
        #expect(writes == [DiskWrite(offset: 0, bytes: format.encodeBlocks(0 ..< 3, clean: bitmap))])
        #expect(h.statusInfo() == "3 disk 7:3 A")
    }

    @Test func badMagicMeansEverythingOutOfSync() {
        var image = Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 1536)
        image[0] = 0x00
        var (h, writes) = Self.resumedLog(image: image)
        #expect(h.syncCount() == 0)
        #expect(h.inSync(0) == false)
        #expect(h.isClean(127) == false)
        #expect(h.resyncWork() == .some(0))
        // and the rewritten image has a good header and an empty bitmap
        #expect(writes.count == 1)
        #expect(Array(writes[0].bytes[0 ..< 8]) == hex("72 52 69 4D 02 00 00 00"))
        #expect(writes[0].bytes[1024 ..< 1040].allSatisfy { $0 == 0 })
    }

    @Test func failedReadMeansEverythingOutOfSyncAndD() {
        var (h, _) = Self.resumedLog(image: nil)
        #expect(h.syncCount() == 0)
        #expect(h.statusInfo() == "3 disk 7:3 D")
    }

    @Test func nosyncIgnoresDeviceContent() {
        var (h, writes) = Self.resumedLog("131072 disk 7:3 1024 nosync", image: zeros(1536))
        #expect(h.syncCount() == 128)
        #expect(h.isClean(64) == true)
        #expect(writes.first?.bytes[1024 ..< 1040].allSatisfy { $0 == 0xFF } == true)
    }

    @Test func syncIgnoresDeviceContent() {
        var (h, _) = Self.resumedLog("131072 disk 7:3 1024 sync", image: Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 1536))
        #expect(h.syncCount() == 0)
    }

    @Test func grownDeviceResyncsNewRegions() {
        // Disk recorded 64 regions, all clean; the log now has 128.
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 64, clean: Array(0 ..< 128), bytes: 1536))
        #expect(h.syncCount() == 64)
        #expect(h.inSync(63) == true)
        #expect(h.inSync(64) == false)
    }

    // MARK: Flush writes only dirty blocks

    @Test func flushAfterMarkInRegion0Writes512ByteBlock() {
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 1536))
        #expect(h.reply(.markRegion, regions([0])) == .ok)
        let (writes, reply) = Self.flushWrites(&h)
        #expect(reply == .ok)
        #expect(writes.count == 1)
        #expect(writes.first?.offset == 1024)
        #expect(writes.first?.bytes.count == 512)
        #expect(writes.first.map { Array($0.bytes[0 ..< 17]) } == [0xFE] + Array(repeating: 0xFF, count: 15) + [0])
        // nothing changed since: the next flush writes nothing
        let (again, reply2) = Self.flushWrites(&h)
        #expect(again.isEmpty)
        #expect(reply2 == .ok)
        // a mark on a region already not clean writes nothing either
        _ = h.reply(.markRegion, regions([0]))
        #expect(Self.flushWrites(&h).0.isEmpty)
    }

    @Test func flushWith4096BlocksWritesBlock0() {
        var (h, _) = Self.resumedLog(blockSize: 4096, image: Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 4096))
        _ = h.reply(.markRegion, regions([127]))
        let (writes, _) = Self.flushWrites(&h)
        #expect(writes.map(\.offset) == [0])
        #expect(writes.map(\.bytes.count) == [4096])
        #expect(writes.first.map { Array($0.bytes[0 ..< 4]) } == hex("72 52 69 4D"))
        #expect(writes.first?.bytes[1024 + 15] == 0x7F)
    }

    @Test func flushWritesSeparateRunsOfDirtyBlocks() {
        // 16384 regions of 2 sectors: bitmap 2048 bytes = blocks 2...5 of 512 bytes.
        let text = "32768 disk 7:3 2"
        var (h, resumeWrites) = Self.resumedLog(text, image: Self.validImage(regions: 16384, clean: Array(0 ..< 16384), bytes: 3072))
        #expect(resumeWrites.map(\.offset) == [0])
        #expect(resumeWrites.map(\.bytes.count) == [3072])
        _ = h.reply(.markRegion, regions([0, 8192]))   // blocks 2 and 4
        var (writes, _) = Self.flushWrites(&h)
        #expect(writes.map(\.offset) == [1024, 2048])
        #expect(writes.map(\.bytes.count) == [512, 512])
        #expect(writes.first?.bytes[0] == 0xFE)
        #expect(writes.last?.bytes[0] == 0xFE)
        // adjacent dirty blocks form one write
        _ = h.reply(.markRegion, regions([4095, 4096]))  // blocks 2 and 3
        (writes, _) = Self.flushWrites(&h)
        #expect(writes.map(\.offset) == [1024])
        #expect(writes.map(\.bytes.count) == [1024])
        // clears are written at the next flush too
        _ = h.reply(.clearRegion, regions([8192]))
        (writes, _) = Self.flushWrites(&h)
        #expect(writes.map(\.offset) == [2048])
        #expect(writes.first?.bytes[0] == 0xFF)
    }

    @Test func integratedFlushMarksAreWritten() {
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 1536))
        let (writes, reply) = Self.flushWrites(&h, regions([9]))
        #expect(reply == .ok)
        #expect(writes.map(\.offset) == [1024])
        #expect(writes.first?.bytes[1] == 0xFD)
        #expect(h.isClean(9) == false)
    }

    @Test func failedWriteAnswersEIOAndShowsD() {
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 1536))
        #expect(h.statusInfo() == "3 disk 7:3 A")
        _ = h.reply(.markRegion, regions([0]))
        let (writes, reply) = Self.flushWrites(&h, result: .failure(DeviceIOError(errno: 5, operation: "write 512 bytes at 1024")))
        #expect(writes.count == 1)
        #expect(reply == Reply(error: EIO, payload: .none))
        #expect(h.statusInfo() == "3 disk 7:3 D")
        #expect(h.reply(.statusInfo) == Reply(payload: .text("3 disk 7:3 D")))
        // the blocks stay dirty: the next flush retries them
        let (retry, reply2) = Self.flushWrites(&h)
        #expect(retry == writes)
        #expect(reply2 == .ok)
        // D stays until the next resume
        #expect(h.statusInfo() == "3 disk 7:3 D")
        #expect(h.send(.resume).action == .readDevice(luid: h.luid, byteCount: 1536))
        #expect(h.statusInfo() == "3 disk 7:3 A")
    }

    @Test func postsuspendFlushesDirtyBlocks() {
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 128, clean: Array(0 ..< 128), bytes: 1536))
        _ = h.reply(.markRegion, regions([70]))
        #expect(h.reply(.presuspend) == .ok)
        let out = h.send(.postsuspend)
        guard case let .writeDevice(_, writes) = out.action else {
            Issue.record("expected a write at postsuspend, got \(out.action)")
            return
        }
        #expect(writes.map(\.offset) == [1024])
        #expect(h.engine.completeWrite(luid: h.luid, .success(())).action == .reply(.ok))
    }

    @Test func statusTableOfDiskLog() {
        let (h0, _) = Self.construct("131072 disk 7:3 1024 nosync block_on_error")
        var h = h0
        #expect(h.reply(.statusTable) == Reply(payload: .text("disk 4 7:3 1024 nosync block_on_error")))
    }

    @Test func destructorClosesDevice() {
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 128, clean: [], bytes: 1536))
        #expect(h.send(.destructor).action == .closeDevice(luid: h.luid, then: .ok))
        #expect(h.log == nil)
    }

    @Test func reconnectOfNosyncDiskLogTrustsDevice() {
        var (h, _) = Self.construct("131072 disk 7:3 1024 nosync", nul: true)
        _ = h.send(.resume)
        _ = h.engine.completeRead(luid: h.luid, .success(Self.validImage(regions: 128, clean: [1, 2], bytes: 1536)))
        _ = h.engine.completeWrite(luid: h.luid, .success(()))
        #expect(h.syncCount() == 2)
        #expect(h.inSync(1) == true)
        #expect(h.inSync(0) == false)
    }

    /// Stray device results (no request waits for them) change nothing and answer nobody.
    @Test func completionsWithoutPendingOperationAreIgnored() {
        var (h, _) = Self.resumedLog(image: Self.validImage(regions: 128, clean: [], bytes: 1536))
        let before = h.log
        for out in [h.engine.completeRead(luid: h.luid, .success(zeros(1536))), h.engine.completeWrite(luid: h.luid, .success(()))] {
            #expect(out.action == .nothing)
            #expect(out.notices.contains { $0.level == .error })
        }
        #expect(h.log?.syncCount == before?.syncCount && h.log?.phase == before?.phase)
    }
}

@Suite struct DiskLogSharingTests {
    @Test func secondLogOnTheSameDeviceIsRefused() {
        var h = Harness()
        #expect(h.send(.constructor, ctr("131072 disk 7:3 1024"), luid: 1, uuid: "LVM-one").action == .openDevice(luid: 1, .number(major: 7, minor: 3)))
        #expect(h.engine.completeOpen(luid: 1, .success(DiskLogEngineTests.attachment())).action == .reply(Reply(payload: .deviceName("7:3"))))
        #expect(h.send(.constructor, ctr("131072 disk /dev/loop3 1024"), luid: 2, uuid: "LVM-two").action == .openDevice(luid: 2, .path("/dev/loop3")))
        let out = h.engine.completeOpen(luid: 2, .success(DiskLogEngineTests.attachment()))
        #expect(out.action == .closeDevice(luid: 2, then: Reply(error: -16, payload: .none)))
        #expect(h.engine.logs[2] == nil)
        #expect(h.engine.logs[1] != nil)
    }
}

@Suite struct ConstructorResendTests {
    /// A CTR whose reply came later than 15 s is re-sent as is (no NUL: not the reconnect form, so the
    /// kernel passes its reply buffer again). The kernel registers the log device only from the reply
    /// it accepts, so the re-sent CTR of a known disk log must carry the device name again.
    @Test func resentConstructorOfKnownDiskLogCarriesDeviceName() {
        var (h, first) = DiskLogEngineTests.construct("131072 disk 7:3 1024", version: 3)
        #expect(first.action == .reply(Reply(payload: .deviceName("7:3"))))
        let resent = h.send(.constructor, ctr("131072 disk 7:3 1024"))
        #expect(resent.action == .reply(Reply(payload: .deviceName("7:3"))))
        // The reconnect form must stay without payload (no reply buffer on the kernel side).
        #expect(h.send(.constructor, ctr("131072 disk 7:3 1024", nul: true)).action == .reply(.ok))
    }
}
