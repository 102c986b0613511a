import Testing
@testable import MirrorLogCore

/// Round trips, every malformed input with its typed error, and reply encoding.
@Suite struct CodecTests {
    // MARK: Helpers

    /// A sample payload of the right shape for each type.
    static func samplePayload(_ type: RequestType) -> RequestPayload {
        switch type {
        case .constructor: ctr("131072 disk 253:2 1024 nosync")
        case .isClean, .inSync, .isRemoteRecovering: .region(0xDEAD_BEEF_0000_0001)
        case .markRegion, .clearRegion: regions([0, 1, 64, 0xFFFF_FFFF_FFFF_FFFF])
        case .flush: regions([3, 4])
        case .setRegionSync: .regionSync(region: 77, inSync: true)
        default: .none
        }
    }

    /// A valid datagram, then patched by `edit`.
    static func datagram(_ type: RequestType = .getSyncCount, _ payload: RequestPayload = .none, edit: (inout [UInt8]) -> Void = { _ in }) -> [UInt8] {
        var bytes = encoded(makeRequest(type, payload))
        edit(&bytes)
        return bytes
    }

    /// Writes a little-endian value at a byte offset of a datagram.
    static func put<T: FixedWidthInteger>(_ value: T, at offset: Int, in bytes: inout [UInt8]) {
        bytes.replaceSubrange(offset ..< offset + MemoryLayout<T>.size, with: le(value))
    }

    static let cn = WireLayout.netlinkHeaderSize                        // cn_msg starts here
    static let body = WireLayout.netlinkHeaderSize + WireLayout.connectorHeaderSize  // dm_ulog_request starts here

    /// A datagram of `type` whose payload is `payload` raw bytes, all lengths consistent.
    static func raw(_ type: RequestType, payload: [UInt8], version: UInt32 = 3) -> [UInt8] {
        var bytes = encoded(makeRequest(type, .none, version: version))
        bytes += payload
        put(UInt32(bytes.count), at: 0, in: &bytes)
        put(UInt16(WireLayout.requestHeaderSize + payload.count), at: cn + WireLayout.cnLenOffset, in: &bytes)
        put(UInt32(payload.count), at: body + WireLayout.dataSizeOffset, in: &bytes)
        return bytes
    }

    static func framingError(_ bytes: [UInt8]) -> FramingError? {
        do {
            _ = try WireDecoder.decode(bytes)
            return nil
        } catch {
            if case let .framing(e) = error { return e }
            return nil
        }
    }

    static func requestError(_ bytes: [UInt8]) -> RequestError? {
        do {
            _ = try WireDecoder.decode(bytes)
            return nil
        } catch {
            if case let .request(e) = error { return e }
            return nil
        }
    }

    // MARK: Round trips

    @Test(arguments: RequestType.allCases, [UInt32(1), 2, 3])
    func roundTrip(type: RequestType, version: UInt32) throws {
        let request = makeRequest(type, Self.samplePayload(type), luid: 0xFEDC_BA98_7654_3210, uuid: "LVM-\(type)-\(version)", version: version, seq: 0xFFFF_FFF0 + version)
        let bytes = encoded(request)
        #expect(bytes.count == WireLayout.framingSize + Self.payloadSize(request.payload))
        let decoded = try WireDecoder.decode(bytes)
        #expect(decoded == request)
        #expect(decoded.header.uuid == "LVM-\(type)-\(version)")
    }

    static func payloadSize(_ p: RequestPayload) -> Int {
        switch p {
        case .none: 0
        case let .constructor(c): c.text.utf8.count + (c.isNULTerminated ? 1 : 0)
        case .region: 8
        case let .regions(l): l.count * 8
        case .regionSync: 16
        }
    }

    @Test func roundTripMaximalUUID() throws {
        let uuid = String(repeating: "u", count: 128)
        let request = makeRequest(.resume, luid: 1, uuid: uuid)
        #expect(try WireDecoder.decode(encoded(request)).header.uuid == uuid)
    }

    @Test func roundTripSetRegionSyncFalse() throws {
        let request = makeRequest(.setRegionSync, .regionSync(region: 9, inSync: false))
        #expect(try WireDecoder.decode(encoded(request)) == request)
    }

    @Test func setRegionSyncAnyNonZeroIsInSync() throws {
        let bytes = Self.raw(.setRegionSync, payload: le(UInt64(12)) + le(Int64(-1)))
        #expect(try WireDecoder.decode(bytes).payload == .regionSync(region: 12, inSync: true))
    }

    @Test func flushWithoutPayloadIsNone() throws {
        #expect(try WireDecoder.decode(Self.raw(.flush, payload: [])).payload == RequestPayload.none)
    }

    @Test func destructorIgnoresPayload() throws {
        #expect(try WireDecoder.decode(Self.raw(.destructor, payload: Array("old table".utf8))).payload == RequestPayload.none)
    }

    @Test func trailingNetlinkPaddingIsAccepted() throws {
        // recvmsg returns NLMSG_ALIGN(nlmsg_len) bytes; the 1 to 3 bytes after nlmsg_len are padding.
        // A CTR of 13 bytes: nlmsg_len 209, datagram 212.
        var bytes = Self.raw(.constructor, payload: Array("4096 core 512".utf8))
        #expect(bytes.count == 209)
        bytes += [0, 0, 0]
        #expect(try WireDecoder.decode(bytes).payload == ctr("4096 core 512"))
        // cn_msg.len may also be up to 3 bytes short of nlmsg_len (aligned nlmsg_len).
        let aligned = Self.raw(.constructor, payload: Array("4096 core 512".utf8)).with { b in
            b += [0, 0, 0]
            Self.put(UInt32(212), at: 0, in: &b)
        }
        #expect(try WireDecoder.decode(aligned).payload == ctr("4096 core 512"))
    }

    // MARK: Framing errors

    @Test func truncated() {
        let full = Self.datagram()
        #expect(Self.framingError([]) == .truncated(have: 0, need: 196))
        #expect(Self.framingError(Array(full.prefix(195))) == .truncated(have: 195, need: 196))
        #expect(Self.framingError(Array(full.prefix(16))) == .truncated(have: 16, need: 196))
    }

    @Test func oversized() {
        let max = 16 + 20 + 16384
        var bytes = Self.raw(.markRegion, payload: zeros(16384 - 160))
        #expect(bytes.count == max)
        #expect(Self.framingError(bytes) == nil)
        bytes.append(0)
        #expect(Self.framingError(bytes) == .oversized(max + 1))
    }

    @Test func netlinkLengthMismatch() {
        let tooLong = Self.datagram { Self.put(UInt32(197), at: 0, in: &$0) }
        #expect(Self.framingError(tooLong) == .netlinkLengthMismatch(nlmsgLen: 197, datagram: 196))
        let tooShort = Self.datagram { Self.put(UInt32(195), at: 0, in: &$0) }
        #expect(Self.framingError(tooShort) == .netlinkLengthMismatch(nlmsgLen: 195, datagram: 196))
        let zero = Self.datagram { Self.put(UInt32(0), at: 0, in: &$0) }
        #expect(Self.framingError(zero) == .netlinkLengthMismatch(nlmsgLen: 0, datagram: 196))
    }

    @Test(arguments: [UInt16(1), 2, 4, 0, 16])
    func netlinkControlType(type: UInt16) {
        let bytes = Self.datagram { Self.put(type, at: 4, in: &$0) }
        #expect(Self.framingError(bytes) == .unexpectedNetlinkType(type))
    }

    @Test func wrongCallbackID() {
        let wrongIdx = Self.datagram { Self.put(UInt32(8), at: Self.cn + 0, in: &$0) }
        #expect(Self.framingError(wrongIdx) == .wrongCallbackID(index: 8, value: 1))
        let wrongVal = Self.datagram { Self.put(UInt32(2), at: Self.cn + 4, in: &$0) }
        #expect(Self.framingError(wrongVal) == .wrongCallbackID(index: 7, value: 2))
        let proc = Self.datagram { Self.put(UInt32(1), at: Self.cn + 0, in: &$0) }  // CN_IDX_PROC {1,1}
        #expect(Self.framingError(proc) == .wrongCallbackID(index: 1, value: 1))
    }

    @Test func connectorLengthMismatch() {
        // len larger than what follows the headers
        let big = Self.datagram { Self.put(UInt16(161), at: Self.cn + 16, in: &$0) }
        #expect(Self.framingError(big) == .connectorLengthMismatch(cnLen: 161, available: 160))
        // len smaller than a dm_ulog_request
        let small = Self.datagram { Self.put(UInt16(159), at: Self.cn + 16, in: &$0) }
        #expect(Self.framingError(small) == .connectorLengthMismatch(cnLen: 159, available: 160))
        // len 4 or more short of nlmsg_len: not alignment padding
        let padded = Self.raw(.markRegion, payload: zeros(8)).with { Self.put(UInt16(164), at: Self.cn + 16, in: &$0) }
        #expect(Self.framingError(padded) == .connectorLengthMismatch(cnLen: 164, available: 168))
    }

    @Test func dataSizeMismatch() {
        let bigger = Self.raw(.markRegion, payload: zeros(8)).with { Self.put(UInt32(16), at: Self.body + 156, in: &$0) }
        #expect(Self.framingError(bigger) == .dataSizeMismatch(dataSize: 16, available: 8))
        let smaller = Self.raw(.markRegion, payload: zeros(16)).with { Self.put(UInt32(8), at: Self.body + 156, in: &$0) }
        #expect(Self.framingError(smaller) == .dataSizeMismatch(dataSize: 8, available: 16))
    }

    @Test func uuidWithoutNUL() {
        let bytes = Self.datagram { bytes in
            for i in 0 ..< 129 { bytes[Self.body + 8 + i] = 0x41 }
        }
        #expect(Self.framingError(bytes) == .uuidNotTerminated)
        // A NUL in the last byte of the field is fine: a 128-character uuid.
        var last = bytes
        last[Self.body + 8 + 128] = 0
        #expect(Self.framingError(last) == nil)
    }

    // MARK: Request errors

    @Test(arguments: [UInt32(0), 18, 255, 0x100])
    func unknownRequestType(raw: UInt32) {
        let bytes = Self.datagram { Self.put(raw, at: Self.body + 152, in: &$0) }
        #expect(Self.requestError(bytes) == .unknownRequestType(raw & 0xFF))
    }

    @Test(arguments: [UInt32(0), 4, 0xFFFF_FFFF])
    func unsupportedVersion(version: UInt32) {
        let bytes = Self.datagram { Self.put(version, at: Self.body + 140, in: &$0) }
        #expect(Self.requestError(bytes) == .unsupportedVersion(version))
    }

    @Test(arguments: [RequestType.markRegion, .clearRegion, .flush], [1, 7, 9, 15, 17])
    func regionArrayNotMultipleOf8(type: RequestType, size: Int) {
        #expect(Self.requestError(Self.raw(type, payload: zeros(size))) == .regionArrayMisaligned(type, bytes: size))
    }

    @Test(arguments: [RequestType.markRegion, .clearRegion])
    func emptyRegionArray(type: RequestType) {
        #expect(Self.requestError(Self.raw(type, payload: [])) == .badPayloadSize(type, got: 0, expected: "a multiple of 8, at least 8"))
    }

    @Test(arguments: [RequestType.isClean, .inSync, .isRemoteRecovering], [0, 4, 7, 9, 16])
    func singleRegionWrongSize(type: RequestType, size: Int) {
        #expect(Self.requestError(Self.raw(type, payload: zeros(size))) == .badPayloadSize(type, got: size, expected: "8"))
    }

    @Test(arguments: [0, 8, 15, 17, 24])
    func setRegionSyncWrongSize(size: Int) {
        #expect(Self.requestError(Self.raw(.setRegionSync, payload: zeros(size))) == .badPayloadSize(.setRegionSync, got: size, expected: "16"))
    }

    @Test(arguments: [RequestType.getSyncCount, .presuspend, .postsuspend, .resume, .getRegionSize, .getResyncWork, .statusInfo, .statusTable])
    func noPayloadTypesRefusePayload(type: RequestType) {
        #expect(Self.requestError(Self.raw(type, payload: zeros(8))) == .badPayloadSize(type, got: 8, expected: "0"))
        #expect(Self.requestError(Self.raw(type, payload: [])) == nil)
    }

    // MARK: Constructor strings

    @Test func constructorWithoutNUL() throws {
        let request = try WireDecoder.decode(Self.raw(.constructor, payload: Array("131072 core 1024".utf8)))
        #expect(request.payload == ctr("131072 core 1024", nul: false))
    }

    @Test func constructorWithNUL() throws {
        let request = try WireDecoder.decode(Self.raw(.constructor, payload: Array("131072 core 1024".utf8) + [0]))
        #expect(request.payload == ctr("131072 core 1024", nul: true))
    }

    @Test func constructorWithEmbeddedNUL() {
        #expect(Self.requestError(Self.raw(.constructor, payload: Array("131072 core".utf8) + [0] + Array("1024".utf8))) == .badConstructorString)
        #expect(Self.requestError(Self.raw(.constructor, payload: Array("131072 core 1024".utf8) + [0, 0])) == .badConstructorString)
    }

    @Test func constructorWithInvalidUTF8() {
        #expect(Self.requestError(Self.raw(.constructor, payload: Array("131072 core ".utf8) + [0xFF, 0xFE])) == .badConstructorString)
        #expect(Self.requestError(Self.raw(.constructor, payload: [0xC3] + [0])) == .badConstructorString)
    }

    // MARK: request_type upper bits

    @Test func upperBitsOfRequestTypeIgnoredButKept() throws {
        let bytes = Self.raw(.isClean, payload: le(UInt64(3))).with { Self.put(UInt32(0xAB00_0007), at: Self.body + 152, in: &$0) }
        let request = try WireDecoder.decode(bytes)
        #expect(request.type == .isClean)
        #expect(request.header.rawRequestType == 0xAB00_0007)
        var reply: [UInt8] = []
        WireEncoder.encodeReply(to: request.header, Reply(payload: .flag(true)), into: &reply)
        #expect(Array(reply[Self.body + 152 ..< Self.body + 156]) == le(UInt32(0xAB00_0007)))
        // and the reply keeps luid, uuid, version and seq
        #expect(Array(reply[Self.body ..< Self.body + 152]) == Array(bytes[Self.body ..< Self.body + 152]))
    }

    @Test func requestEncoderKeepsUpperBitsAndForcesType() throws {
        var request = makeRequest(.flush)
        request.header.rawRequestType = 0x0100_0003   // upper bit set, low byte disagreeing with .flush
        let decoded = try WireDecoder.decode(encoded(request))
        #expect(decoded.type == .flush)
        #expect(decoded.header.rawRequestType == 0x0100_0009)
    }

    // MARK: Reply encoding

    static let replyCases: [(ReplyPayload, [UInt8])] = [
        (.none, []),
        (.flag(false), le(Int64(0))),
        (.flag(true), le(Int64(1))),
        (.count(0x0102_0304_0506_0708), le(UInt64(0x0102_0304_0506_0708))),
        (.resyncWork(nil), le(Int64(0)) + le(UInt64(0))),
        (.resyncWork(0), le(Int64(1)) + le(UInt64(0))),
        (.resyncWork(99), le(Int64(1)) + le(UInt64(99))),
        (.remoteRecovering(isRecovering: false, inSyncHint: 128), le(Int64(0)) + le(UInt64(128))),
        (.remoteRecovering(isRecovering: true, inSyncHint: 0), le(Int64(1)) + le(UInt64(0))),
        (.text("3 disk 7:3 A"), Array("3 disk 7:3 A".utf8)),
        (.text(""), []),
        (.deviceName("253:2"), Array("253:2".utf8) + [0]),
        (.deviceName(""), [0]),
    ]

    @Test(arguments: replyCases.indices)
    func replyPayloadEncoding(index: Int) {
        let (payload, expectedBytes) = Self.replyCases[index]
        #expect(payload.encodedSize == expectedBytes.count)
        let header = makeHeader(luid: 5, uuid: "LVM-r", version: 2, seq: 0xCAFE, rawType: RequestType.statusInfo.rawValue)
        var buffer: [UInt8] = Array(repeating: 0x55, count: 1000)
        WireEncoder.encodeReply(to: header, Reply(error: -5, payload: payload), into: &buffer)
        #expect(buffer.count == 196 + expectedBytes.count)
        #expect(Array(buffer[196...]) == expectedBytes)
        // lengths: nlmsg_len, cn_msg.len, data_size
        #expect(Array(buffer[0 ..< 4]) == le(UInt32(196 + expectedBytes.count)))
        #expect(Array(buffer[Self.cn + 16 ..< Self.cn + 18]) == le(UInt16(160 + expectedBytes.count)))
        #expect(Array(buffer[Self.body + 156 ..< Self.body + 160]) == le(UInt32(expectedBytes.count)))
        #expect(Array(buffer[Self.body + 144 ..< Self.body + 148]) == le(Int32(-5)))
        #expect(Array(buffer[Self.body + 148 ..< Self.body + 152]) == le(UInt32(0xCAFE)))
        // cn_msg seq and ack are 0
        #expect(Array(buffer[Self.cn + 8 ..< Self.cn + 16]) == zeros(8))
        // The reply frames and decodes as a connector message (same layout as a request).
        #expect(Self.framingError(buffer) == nil)
    }

    @Test func replySizesPerCase() {
        #expect(ReplyPayload.none.encodedSize == 0)
        #expect(ReplyPayload.flag(true).encodedSize == 8)
        #expect(ReplyPayload.count(1).encodedSize == 8)
        #expect(ReplyPayload.resyncWork(nil).encodedSize == 16)
        #expect(ReplyPayload.remoteRecovering(isRecovering: true, inSyncHint: 1).encodedSize == 16)
        #expect(ReplyPayload.text("1 core").encodedSize == 6)
        #expect(ReplyPayload.deviceName("7:3").encodedSize == 4)
        #expect(Reply.failure(.noSuchProcess) == Reply(error: -3, payload: .none))
    }

    @Test func regionListViewsPayloadInPlace() {
        let bytes: [UInt8] = [0xAA] + le(UInt64(1)) + le(UInt64(0x8000_0000_0000_0000)) + [0xBB]
        let list = RegionList(bytes: bytes[1 ..< 17])
        #expect(list.count == 2)
        #expect(Array(list) == [1, 0x8000_0000_0000_0000])
        #expect(RegionList([1, 0x8000_0000_0000_0000]) == list)
    }
}

extension Array {
    func with(_ edit: (inout Self) -> Void) -> Self {
        var copy = self
        edit(&copy)
        return copy
    }
}

/// The adapters may decode from a slice of a larger receive buffer.
@Suite struct SliceDecodingTests {
    @Test func decodeFrameFromOffsetSlice() throws {
        let request = makeRequest(.markRegion, regions([1, 2, 3]), luid: 9, uuid: "LVM-slice", seq: 5)
        let buffer: [UInt8] = [0xAA, 0xBB, 0xCC] + encoded(request) + [0xDD, 0xEE, 0xFF, 0x11]
        let datagram = buffer[3 ..< buffer.count - 4]
        let frame = try WireDecoder.decodeFrame(datagram)
        #expect(frame.header.uuid == "LVM-slice")
        #expect(frame.header.luid == 9)
        let decoded = try WireDecoder.decodeRequest(frame)
        #expect(decoded == request)
        guard case let .regions(list) = decoded.payload else {
            Issue.record("expected regions")
            return
        }
        #expect(Array(list) == [1, 2, 3])
    }

    @Test func constructorFromOffsetSlice() throws {
        let request = makeRequest(.constructor, ctr("131072 core 1024", nul: true))
        let buffer: [UInt8] = zeros(7) + encoded(request)
        let decoded = try WireDecoder.decodeRequest(WireDecoder.decodeFrame(buffer[7...]))
        #expect(decoded.payload == ctr("131072 core 1024", nul: true))
    }
}
