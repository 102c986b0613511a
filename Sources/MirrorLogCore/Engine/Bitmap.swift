/// A fixed-size bitmap in 64-bit words. Bit `i` is bit `i % 64` of word `i / 64`, so that the
/// words written little endian give the kernel's little-endian bitmap layout byte for byte.
public struct Bitmap: Sendable, Equatable {
    /// Number of valid bits.
    public let count: UInt64
    /// Storage; bits at and beyond `count` are always zero.
    public private(set) var words: [UInt64]

    /// A bitmap of `count` bits, all set to `value`.
    public init(count: UInt64, value: Bool = false) {
        self.count = count
        let wordCount = Int((count + 63) / 64)
        self.words = Array(repeating: value ? ~0 : 0, count: wordCount)
        if value { clearTail() }
    }

    @inline(__always)
    public subscript(bit: UInt64) -> Bool {
        get { words[Int(bit >> 6)] & (1 << (bit & 63)) != 0 }
        set {
            let mask: UInt64 = 1 << (bit & 63)
            if newValue { words[Int(bit >> 6)] |= mask } else { words[Int(bit >> 6)] &= ~mask }
        }
    }

    /// Sets `bit` to `value` and reports whether it changed.
    @inline(__always)
    @discardableResult
    public mutating func update(_ bit: UInt64, to value: Bool) -> Bool {
        let index = Int(bit >> 6)
        let mask: UInt64 = 1 << (bit & 63)
        let old = words[index]
        let new = value ? old | mask : old & ~mask
        words[index] = new
        return old != new
    }

    /// Sets every bit to `value`.
    public mutating func fill(_ value: Bool) {
        for i in words.indices { words[i] = value ? ~0 : 0 }
        if value { clearTail() }
    }

    /// Number of set bits (O(words); used only when loading state, never per request).
    public var popCount: UInt64 {
        words.reduce(0) { $0 + UInt64($1.nonzeroBitCount) }
    }

    /// The first bit at or after `start` whose value is `value`, or `count` if there is none.
    public func firstIndex(of value: Bool, from start: UInt64) -> UInt64 {
        guard start < count else { return count }
        var index = Int(start >> 6)
        var word = (value ? words[index] : ~words[index]) & (~0 << (start & 63))
        while true {
            if word != 0 {
                let bit = UInt64(index) << 6 + UInt64(word.trailingZeroBitCount)
                return min(bit, count)
            }
            index += 1
            guard index < words.count else { return count }
            word = value ? words[index] : ~words[index]
        }
    }

    /// Replaces word `index` (used when loading from disk); bits beyond `count` are dropped.
    public mutating func setWord(_ index: Int, _ value: UInt64) {
        words[index] = value
        if index == words.count - 1 { clearTail() }
    }

    private mutating func clearTail() {
        let tailBits = count & 63
        if tailBits != 0, !words.isEmpty { words[words.count - 1] &= (1 << tailBits) - 1 }
    }
}
