/// Decodes kernel messages: framing first (``decodeFrame(_:)``), then the typed request (``decodeRequest(_:)``).
///
/// Framing errors mean the message cannot be answered and is dropped; request errors are answered
/// with `-EINVAL` because the header, and so the `seq`, is trustworthy.
public enum WireDecoder {
    /// Validates the netlink, connector and request headers of one datagram.
    public static func decodeFrame(_ datagram: ArraySlice<UInt8>) throws(FramingError) -> ULogFrame {
        let count = datagram.count
        guard count >= WireLayout.framingSize else {
            throw .truncated(have: count, need: WireLayout.framingSize)
        }
        guard count <= WireLayout.netlinkHeaderSize + WireLayout.connectorHeaderSize + WireLayout.connectorMaxMessageSize else {
            throw .oversized(count)
        }
        let nlmsgLen = Int(datagram.loadNative(at: 0, as: UInt32.self))
        guard nlmsgLen >= WireLayout.framingSize, nlmsgLen <= count else {
            throw .netlinkLengthMismatch(nlmsgLen: nlmsgLen, datagram: count)
        }
        let nlmsgType: UInt16 = datagram.loadNative(at: 4)
        guard nlmsgType == WireLayout.netlinkMessageTypeDone else {
            throw .unexpectedNetlinkType(nlmsgType)
        }
        let cn = datagram.dropFirst(WireLayout.netlinkHeaderSize)
        let index: UInt32 = cn.loadNative(at: WireLayout.cnIndexOffset)
        let value: UInt32 = cn.loadNative(at: WireLayout.cnValueOffset)
        guard index == WireLayout.connectorIndex, value == WireLayout.connectorValue else {
            throw .wrongCallbackID(index: index, value: value)
        }
        let cnLen = Int(cn.loadNative(at: WireLayout.cnLenOffset, as: UInt16.self))
        let afterNetlink = nlmsgLen - WireLayout.netlinkHeaderSize - WireLayout.connectorHeaderSize
        // The kernel sets nlmsg_len = header + cn_msg + len exactly; allow netlink alignment padding only.
        guard cnLen >= WireLayout.requestHeaderSize, cnLen <= afterNetlink, afterNetlink - cnLen < 4 else {
            throw .connectorLengthMismatch(cnLen: cnLen, available: afterNetlink)
        }
        let body = cn.dropFirst(WireLayout.connectorHeaderSize)
        let dataSize = Int(body.loadNative(at: WireLayout.dataSizeOffset, as: UInt32.self))
        let available = cnLen - WireLayout.requestHeaderSize
        guard dataSize == available else {
            throw .dataSizeMismatch(dataSize: dataSize, available: available)
        }
        let uuidField = body[body.startIndex + WireLayout.uuidOffset ..< body.startIndex + WireLayout.uuidOffset + WireLayout.uuidFieldSize]
        guard let nul = uuidField.firstIndex(of: 0) else { throw .uuidNotTerminated }
        let header = RequestHeader(
            luid: body.loadNative(at: WireLayout.luidOffset),
            uuidBytes: uuidField[uuidField.startIndex ..< nul],
            version: body.loadNative(at: WireLayout.versionOffset),
            error: body.loadNative(at: WireLayout.errorOffset),
            seq: body.loadNative(at: WireLayout.seqOffset),
            rawRequestType: body.loadNative(at: WireLayout.requestTypeOffset)
        )
        let payloadStart = body.startIndex + WireLayout.requestHeaderSize
        return ULogFrame(header: header, payload: body[payloadStart ..< payloadStart + dataSize])
    }

    /// Checks the request type, version and payload shape of a framed message.
    public static func decodeRequest(_ frame: ULogFrame) throws(RequestError) -> KernelRequest {
        let raw = frame.header.rawRequestType
        guard let type = RequestType(rawValue: raw & RequestType.mask) else {
            throw .unknownRequestType(raw & RequestType.mask)
        }
        let version = frame.header.version
        guard version >= 1, version <= WireLayout.newestProtocolVersion else {
            throw .unsupportedVersion(version)
        }
        return KernelRequest(header: frame.header, type: type, payload: try decodePayload(frame.payload, for: type))
    }

    /// Framing and request decoding in one step (tests and tools).
    public static func decode(_ datagram: [UInt8]) throws(DecodeError) -> KernelRequest {
        let frame: ULogFrame
        do { frame = try decodeFrame(datagram[...]) } catch { throw .framing(error) }
        do { return try decodeRequest(frame) } catch { throw .request(error) }
    }

    static func decodePayload(_ payload: ArraySlice<UInt8>, for type: RequestType) throws(RequestError) -> RequestPayload {
        switch type {
        case .constructor:
            return .constructor(try decodeConstructor(payload))
        case .isClean, .inSync, .isRemoteRecovering:
            guard payload.count == 8 else { throw .badPayloadSize(type, got: payload.count, expected: "8") }
            return .region(payload.loadNative(at: 0))
        case .markRegion, .clearRegion, .flush:
            guard payload.count % 8 == 0 else { throw .regionArrayMisaligned(type, bytes: payload.count) }
            if type == .flush && payload.isEmpty { return .none }
            guard !payload.isEmpty else { throw .badPayloadSize(type, got: 0, expected: "a multiple of 8, at least 8") }
            return .regions(RegionList(bytes: payload))
        case .setRegionSync:
            guard payload.count == 16 else { throw .badPayloadSize(type, got: payload.count, expected: "16") }
            let inSync: Int64 = payload.loadNative(at: 8)
            return .regionSync(region: payload.loadNative(at: 0), inSync: inSync != 0)
        case .destructor, .presuspend, .postsuspend, .resume, .getRegionSize, .getResyncWork,
             .getSyncCount, .statusInfo, .statusTable:
            // These carry no payload. The kernel's DTR may still pass its table string on old versions;
            // accept and ignore any bytes rather than fail a teardown.
            if type != .destructor && !payload.isEmpty {
                throw .badPayloadSize(type, got: payload.count, expected: "0")
            }
            return .none
        }
    }

    static func decodeConstructor(_ payload: ArraySlice<UInt8>) throws(RequestError) -> ConstructorString {
        var bytes = payload
        var terminated = false
        if let last = bytes.last, last == 0 {
            bytes = bytes.dropLast()
            terminated = true
        }
        guard !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) else {
            throw .badConstructorString
        }
        return ConstructorString(text: text, isNULTerminated: terminated)
    }
}

/// Either stage of decoding failed.
public enum DecodeError: Error, Equatable, Sendable {
    case framing(FramingError)
    case request(RequestError)
}
