import Testing
@testable import MirrorLogCore

/// Byte vectors written out by hand from the C layout (nlmsghdr 16 + cn_msg 20 + dm_ulog_request 160),
/// little endian, not produced by our encoder.
@Suite struct GoldenVectorTests {
    /// dm_ulog_request for luid 0x1122334455667788, uuid "LVM-test", version 3, error `error`,
    /// seq 42, request_type `type`, data_size `dataSize`.
    static func requestHeader(type: String, dataSize: String, error: String = "00 00 00 00") -> [UInt8] {
        hex("88 77 66 55 44 33 22 11")          // luid @0
            + hex("4C 56 4D 2D 74 65 73 74")    // uuid @8: "LVM-test"
            + zeros(129 - 8)                    // rest of uuid[129], NUL included
            + zeros(3)                          // padding @137
            + hex("03 00 00 00")                // version @140
            + hex(error)                        // error @144
            + hex("2A 00 00 00")                // seq @148 = 42
            + hex(type)                         // request_type @152
            + hex(dataSize)                     // data_size @156
    }

    static let markRegionDatagram: [UInt8] =
        // nlmsghdr: len 212 (0xD4), type NLMSG_DONE, flags 0, seq 0x99, pid 0
        hex("D4 00 00 00  03 00  00 00  99 00 00 00  00 00 00 00")
        // cn_msg: idx 7, val 1, seq 0x1234, ack 0, len 176 (0xB0), flags 0
        + hex("07 00 00 00  01 00 00 00  34 12 00 00  00 00 00 00  B0 00  00 00")
        + requestHeader(type: "0A 00 00 00", dataSize: "10 00 00 00")
        // two regions: 5 and 0x0102030405060708
        + hex("05 00 00 00 00 00 00 00  08 07 06 05 04 03 02 01")

    /// The header the replies below answer.
    static let header = RequestHeader(luid: 0x1122_3344_5566_7788, uuidBytes: Array("LVM-test".utf8)[...], version: 3, seq: 42, rawRequestType: 0)

    static func reply(_ type: RequestType, _ reply: Reply) -> [UInt8] {
        var h = header
        h.rawRequestType = type.rawValue
        var buffer: [UInt8] = [0xEE, 0xEE]  // stale content must be cleared
        WireEncoder.encodeReply(to: h, reply, into: &buffer)
        return buffer
    }

    @Test func markRegionRequestDecodes() throws {
        #expect(Self.markRegionDatagram.count == 212)
        let request = try WireDecoder.decode(Self.markRegionDatagram)
        #expect(request.type == .markRegion)
        #expect(request.header.luid == 0x1122_3344_5566_7788)
        #expect(request.header.uuid == "LVM-test")
        #expect(Array(request.header.uuidBytes) == Array("LVM-test".utf8))
        #expect(request.header.version == 3)
        #expect(request.header.seq == 42)
        #expect(request.header.error == 0)
        #expect(request.header.rawRequestType == 10)
        guard case let .regions(list) = request.payload else {
            Issue.record("expected regions, got \(request.payload)")
            return
        }
        #expect(Array(list) == [5, 0x0102_0304_0506_0708])
        #expect(request == KernelRequest(header: Self.header.with(rawType: 10), type: .markRegion, payload: regions([5, 0x0102_0304_0506_0708])))
    }

    @Test func markRegionRequestMatchesOurEncoderModuloKernelSeq() {
        // Our request encoder (used by the replay transport) produces the same bytes, except that it
        // writes nlmsg seq and cn_msg seq as 0.
        var golden = Self.markRegionDatagram
        golden.replaceSubrange(8 ..< 12, with: zeros(4))
        golden.replaceSubrange(24 ..< 28, with: zeros(4))
        let request = makeRequest(.markRegion, regions([5, 0x0102_0304_0506_0708]), luid: 0x1122_3344_5566_7788, uuid: "LVM-test", version: 3, seq: 42)
        #expect(encoded(request) == golden)
    }

    @Test func isRemoteRecoveringReply() {
        let expected =
            hex("D4 00 00 00  03 00  00 00  00 00 00 00  00 00 00 00")                  // nlmsg_len 212
            + hex("07 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00  B0 00  00 00")   // cb_id {7,1}, seq/ack 0, len 176
            + Self.requestHeader(type: "11 00 00 00", dataSize: "10 00 00 00")          // type 17, data_size 16
            + hex("01 00 00 00 00 00 00 00  20 00 00 00 00 00 00 00")                   // is_recovering 1, hint 0x20
        #expect(Self.reply(.isRemoteRecovering, Reply(payload: .remoteRecovering(isRecovering: true, inSyncHint: 0x20))) == expected)
    }

    @Test func getResyncWorkReplies() {
        let work =
            hex("D4 00 00 00  03 00  00 00  00 00 00 00  00 00 00 00")
            + hex("07 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00  B0 00  00 00")
            + Self.requestHeader(type: "0C 00 00 00", dataSize: "10 00 00 00")
            + hex("01 00 00 00 00 00 00 00  07 01 00 00 00 00 00 00")                   // i 1, r 0x107
        #expect(Self.reply(.getResyncWork, Reply(payload: .resyncWork(0x107))) == work)

        let none =
            hex("D4 00 00 00  03 00  00 00  00 00 00 00  00 00 00 00")
            + hex("07 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00  B0 00  00 00")
            + Self.requestHeader(type: "0C 00 00 00", dataSize: "10 00 00 00")
            + zeros(16)                                                                 // i 0, r 0
        #expect(Self.reply(.getResyncWork, Reply(payload: .resyncWork(nil))) == none)
    }

    @Test func statusInfoReply() {
        let expected =
            hex("CA 00 00 00  03 00  00 00  00 00 00 00  00 00 00 00")                  // 196 + 6 = 202
            + hex("07 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00  A6 00  00 00")   // 160 + 6 = 166
            + Self.requestHeader(type: "0F 00 00 00", dataSize: "06 00 00 00")
            + hex("31 20 63 6F 72 65")                                                  // "1 core", no NUL
        #expect(Self.reply(.statusInfo, Reply(payload: .text("1 core"))) == expected)
    }

    @Test func errorReply() {
        let expected =
            hex("C4 00 00 00  03 00  00 00  00 00 00 00  00 00 00 00")                  // 196
            + hex("07 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00  A0 00  00 00")   // 160
            + Self.requestHeader(type: "0A 00 00 00", dataSize: "00 00 00 00", error: "EA FF FF FF") // -22
        #expect(Self.reply(.markRegion, .failure(.invalidArgument)) == expected)
    }

    @Test func constructorDeviceNameReply() {
        let expected =
            hex("C8 00 00 00  03 00  00 00  00 00 00 00  00 00 00 00")                  // 196 + 4
            + hex("07 00 00 00  01 00 00 00  00 00 00 00  00 00 00 00  A4 00  00 00")   // 160 + 4
            + Self.requestHeader(type: "01 00 00 00", dataSize: "04 00 00 00")
            + hex("37 3A 33 00")                                                        // "7:3" NUL
        #expect(Self.reply(.constructor, Reply(payload: .deviceName("7:3"))) == expected)
    }

    @Test func replyCarriesNetlinkPortID() {
        var buffer: [UInt8] = []
        WireEncoder.encodeReply(to: Self.header, .ok, netlinkPortID: 0x0A0B_0C0D, into: &buffer)
        #expect(Array(buffer[12 ..< 16]) == hex("0D 0C 0B 0A"))
    }
}

extension RequestHeader {
    func with(rawType: UInt32) -> RequestHeader {
        var copy = self
        copy.rawRequestType = rawType
        return copy
    }
}
