/// Encodes replies (and, for tests and the replay transport, requests) into full netlink datagrams.
///
/// Every function appends into a caller-owned buffer that is cleared first, keeping its capacity, so a
/// steady stream of replies allocates nothing.
public enum WireEncoder {
    /// Encodes the reply to `header`: same luid, uuid, version, seq and request_type; `error` and
    /// `data_size` set from `reply`. cn_msg seq and ack are 0.
    public static func encodeReply(to header: RequestHeader, _ reply: Reply, netlinkPortID: UInt32 = 0, into buffer: inout [UInt8]) {
        encode(header: header, error: reply.error, payloadSize: reply.payload.encodedSize, netlinkPortID: netlinkPortID, into: &buffer)
        appendPayload(reply.payload, to: &buffer)
    }

    /// Encodes a request as the kernel would send it.
    public static func encodeRequest(_ request: KernelRequest, into buffer: inout [UInt8]) {
        var header = request.header
        header.rawRequestType = request.type.rawValue | (header.rawRequestType & ~RequestType.mask)
        let size: Int
        switch request.payload {
        case .none: size = 0
        case let .constructor(c): size = c.text.utf8.count + (c.isNULTerminated ? 1 : 0)
        case .region: size = 8
        case let .regions(list): size = list.bytes.count
        case .regionSync: size = 16
        }
        encode(header: header, error: header.error, payloadSize: size, netlinkPortID: 0, into: &buffer)
        switch request.payload {
        case .none: break
        case let .constructor(c):
            buffer.append(contentsOf: c.text.utf8)
            if c.isNULTerminated { buffer.append(0) }
        case let .region(r): buffer.appendNative(r)
        case let .regions(list): buffer.append(contentsOf: list.bytes)
        case let .regionSync(r, inSync):
            buffer.appendNative(r)
            buffer.appendNative(Int64(inSync ? 1 : 0))
        }
    }

    /// Writes the three headers for a message with `payloadSize` bytes of payload to follow.
    static func encode(header: RequestHeader, error: Int32, payloadSize: Int, netlinkPortID: UInt32, into buffer: inout [UInt8]) {
        buffer.removeAll(keepingCapacity: true)
        let cnLen = WireLayout.requestHeaderSize + payloadSize
        // struct nlmsghdr
        buffer.appendNative(UInt32(WireLayout.netlinkHeaderSize + WireLayout.connectorHeaderSize + cnLen))
        buffer.appendNative(WireLayout.netlinkMessageTypeDone)
        buffer.appendNative(UInt16(0))          // flags
        buffer.appendNative(UInt32(0))          // seq
        buffer.appendNative(netlinkPortID)      // pid
        // struct cn_msg
        buffer.appendNative(WireLayout.connectorIndex)
        buffer.appendNative(WireLayout.connectorValue)
        buffer.appendNative(UInt32(0))          // seq
        buffer.appendNative(UInt32(0))          // ack
        buffer.appendNative(UInt16(cnLen))
        buffer.appendNative(UInt16(0))          // flags
        // struct dm_ulog_request
        buffer.appendNative(header.luid)
        let uuidCount = min(header.uuidBytes.count, WireLayout.uuidFieldSize - 1)
        buffer.append(contentsOf: header.uuidBytes.prefix(uuidCount))
        // NUL-fill the rest of uuid[129] and the 3 bytes of padding up to `version`.
        let fill = WireLayout.versionOffset - WireLayout.uuidOffset - uuidCount
        buffer.append(contentsOf: repeatElement(0, count: fill))
        buffer.appendNative(header.version)
        buffer.appendNative(error)
        buffer.appendNative(header.seq)
        buffer.appendNative(header.rawRequestType)
        buffer.appendNative(UInt32(payloadSize))
    }

    static func appendPayload(_ payload: ReplyPayload, to buffer: inout [UInt8]) {
        switch payload {
        case .none: break
        case let .flag(b): buffer.appendNative(Int64(b ? 1 : 0))
        case let .count(n): buffer.appendNative(n)
        case let .resyncWork(region):
            buffer.appendNative(Int64(region == nil ? 0 : 1))
            buffer.appendNative(region ?? 0)
        case let .remoteRecovering(isRecovering, hint):
            buffer.appendNative(Int64(isRecovering ? 1 : 0))
            buffer.appendNative(hint)
        case let .text(s): buffer.append(contentsOf: s.utf8)
        case let .deviceName(s):
            buffer.append(contentsOf: s.utf8)
            buffer.append(0)
        }
    }
}
