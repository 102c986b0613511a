/// Run-length encoding of bitmaps for state transfers: the bit count, then alternating run lengths
/// starting with a run of zeros, all as varints. A mostly-clean or mostly-dirty bitmap of millions
/// of regions takes a few bytes; the worst case (alternating bits) is about one byte per bit.
enum BitmapRunLength {
    static func encode(_ bitmap: Bitmap, into w: inout LittleEndianWriter) {
        w.varint(bitmap.count)
        var runs: [UInt64] = []
        var position: UInt64 = 0
        var value = false
        while position < bitmap.count {
            let end = bitmap.firstIndex(of: !value, from: position)
            runs.append(end - position)
            position = end
            value.toggle()
        }
        w.varint(UInt64(runs.count))
        for run in runs { w.varint(run) }
    }

    static func decode(from r: inout LittleEndianReader) throws(ClusterMessageError) -> Bitmap {
        let count = try r.varint()
        guard count <= ConstructorArguments.maxRegionCount else { throw .malformed("bitmap of \(count) bits") }
        let runCount = try r.count()
        var bitmap = Bitmap(count: count)
        var position: UInt64 = 0
        var value = false
        for _ in 0 ..< runCount {
            let run = try r.varint()
            guard run <= count - position else { throw .malformed("bitmap runs exceed \(count) bits") }
            if value { bitmap.setRange(position ..< position + run) }
            position += run
            value.toggle()
        }
        guard position == count else { throw .malformed("bitmap runs cover \(position) of \(count) bits") }
        return bitmap
    }
}

extension Bitmap {
    /// Sets every bit in `range`.
    mutating func setRange(_ range: Range<UInt64>) {
        var bit = range.lowerBound
        while bit < range.upperBound {
            if bit & 63 == 0, range.upperBound - bit >= 64 {
                setWord(Int(bit >> 6), ~0)
                bit += 64
            } else {
                self[bit] = true
                bit += 1
            }
        }
    }
}
