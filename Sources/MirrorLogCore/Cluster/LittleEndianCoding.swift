/// Appends little-endian integers and varints to a byte buffer (cluster messages are little endian
/// on every architecture, so mixed-endian clusters agree).
struct LittleEndianWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 64) { bytes.reserveCapacity(capacity) }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { integer(value) }
    mutating func u32(_ value: UInt32) { integer(value) }
    mutating func u64(_ value: UInt64) { integer(value) }

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
    }

    /// LEB128 unsigned varint.
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func member(_ member: MemberID) {
        u32(member.nodeID)
        u32(member.pid)
    }

    mutating func blob(_ data: [UInt8]) {
        varint(UInt64(data.count))
        bytes.append(contentsOf: data)
    }
}

/// Reads what ``LittleEndianWriter`` wrote, with bounds checks that throw instead of trapping.
struct LittleEndianReader {
    let bytes: ArraySlice<UInt8>
    private(set) var offset: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        self.offset = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - offset }
    var isAtEnd: Bool { offset == bytes.endIndex }

    mutating func u8() throws(ClusterMessageError) -> UInt8 { try integer() }
    mutating func u16() throws(ClusterMessageError) -> UInt16 { try integer() }
    mutating func u32() throws(ClusterMessageError) -> UInt32 { try integer() }
    mutating func u64() throws(ClusterMessageError) -> UInt64 { try integer() }

    mutating func integer<T: FixedWidthInteger>(_: T.Type = T.self) throws(ClusterMessageError) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { throw .truncated(at: offset - bytes.startIndex) }
        var value: T = 0
        for i in 0 ..< size { value |= T(bytes[offset + i]) << (8 * i) }
        offset += size
        return value
    }

    mutating func varint() throws(ClusterMessageError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < bytes.endIndex else { throw .truncated(at: offset - bytes.startIndex) }
            let byte = bytes[offset]
            offset += 1
            guard shift < 64, shift < 63 || byte <= 1 else { throw .malformed("varint overflows 64 bits") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A count that must fit in the bytes left, each element taking at least `minimumElementSize`.
    mutating func count(minimumElementSize: Int = 1) throws(ClusterMessageError) -> Int {
        let value = try varint()
        guard value <= UInt64(remaining / max(1, minimumElementSize)) else { throw .malformed("count \(value) exceeds the message") }
        return Int(value)
    }

    mutating func member() throws(ClusterMessageError) -> MemberID {
        MemberID(nodeID: try u32(), pid: try u32())
    }

    mutating func blob() throws(ClusterMessageError) -> [UInt8] {
        let n = try count()
        let data = Array(bytes[offset ..< offset + n])
        offset += n
        return data
    }
}
