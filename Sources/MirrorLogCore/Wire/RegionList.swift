/// A read-only view of an array of native-endian `u64` region numbers inside a message payload.
///
/// It does not copy the payload: iterating loads each region straight from the received bytes.
public struct RegionList: RandomAccessCollection, Sendable, Equatable {
    public let bytes: ArraySlice<UInt8>

    /// Wraps `bytes`, whose count must be a multiple of 8.
    public init(bytes: ArraySlice<UInt8>) {
        precondition(bytes.count % 8 == 0, "region array must be a multiple of 8 bytes")
        self.bytes = bytes
    }

    /// Encodes `regions` into a new list (for tests and tools).
    public init(_ regions: [UInt64]) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(regions.count * 8)
        for region in regions { buffer.appendNative(region) }
        self.bytes = buffer[...]
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { bytes.count / 8 }

    public subscript(position: Int) -> UInt64 {
        bytes.loadNative(at: position * 8)
    }
}
