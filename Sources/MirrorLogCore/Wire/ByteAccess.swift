/// Unaligned native-endian loads and stores on byte buffers, used by the codec.
extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendNative<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value) { append(contentsOf: $0) }
    }
}

extension ArraySlice where Element == UInt8 {
    /// Loads a native-endian integer at `offset` bytes from the start of the slice.
    @inline(__always)
    func loadNative<T: FixedWidthInteger>(at offset: Int, as: T.Type = T.self) -> T {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: T.self) }
    }
}
