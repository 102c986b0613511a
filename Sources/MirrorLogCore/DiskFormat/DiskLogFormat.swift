/// The on-disk log format shared with the kernel's `disk` dirty log (dm-log.c):
/// a header at byte 0 `{u32 magic "MiRr"; u32 version 2; u64 nr_regions}`, and the clean bitmap from
/// byte 1024, one bit per region, little endian. The whole image is rounded up to the device's
/// logical block size so that it can be written with O_DIRECT.
public struct DiskLogFormat: Sendable, Equatable {
    /// `MIRROR_MAGIC`.
    public static let magic: UInt32 = 0x4D69_5272
    /// `MIRROR_DISK_VERSION`.
    public static let version: UInt32 = 2
    /// Byte offset of the clean bitmap (`LOG_OFFSET` = 2 sectors).
    public static let bitmapOffset = 1024
    /// Size of the encoded header.
    public static let headerSize = 16
    /// mirrorlogd's record after the kernel's header, in bytes the kernel neither reads nor checks:
    /// magic `"MLgn"`, 4 reserved bytes, the clustered log's recovery generation (u64). Written only
    /// for a generation above 0, so a local log's image stays exactly the kernel's.
    public static let generationMagic: UInt32 = 0x4D4C_676E
    public static let generationOffset = 16
    public static let generationRecordSize = 16

    public let regionCount: UInt64
    /// Logical block size of the log device; every write covers whole blocks.
    public let blockSize: Int

    public init(regionCount: UInt64, blockSize: Int) {
        precondition(blockSize >= 512 && blockSize & (blockSize - 1) == 0, "block size must be a power of two >= 512")
        self.regionCount = regionCount
        self.blockSize = blockSize
    }

    /// Bitmap bytes as the kernel sizes them: whole 32-bit words.
    public var bitmapBytes: Int { Int((regionCount + 31) / 32) * 4 }
    /// Bytes of the image: header area plus bitmap, rounded up to whole blocks.
    public var imageBytes: Int {
        let raw = Self.bitmapOffset + bitmapBytes
        return (raw + blockSize - 1) / blockSize * blockSize
    }
    public var blockCount: Int { imageBytes / blockSize }

    /// The block holding the bitmap word (64 regions) with index `word`.
    @inline(__always)
    public func block(ofWord word: Int) -> Int { (Self.bitmapOffset + word * 8) / blockSize }

    /// Encodes blocks `blocks` of the image for `clean`, with a header naming `regionCount` regions
    /// (and, for `generation` above 0, the generation record after it).
    public func encodeBlocks(_ blocks: Range<Int>, clean: Bitmap, generation: UInt64 = 0) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: blocks.count * blockSize)
        let start = blocks.lowerBound * blockSize
        let end = blocks.upperBound * blockSize
        if start < Self.headerSize {
            var header: [UInt8] = []
            header.reserveCapacity(Self.headerSize)
            appendLittleEndian(Self.magic, to: &header)
            appendLittleEndian(Self.version, to: &header)
            appendLittleEndian(regionCount, to: &header)
            if generation > 0 {
                appendLittleEndian(Self.generationMagic, to: &header)
                appendLittleEndian(UInt32(0), to: &header)
                appendLittleEndian(generation, to: &header)
            }
            for i in 0 ..< header.count where i >= start && i - start < bytes.count { bytes[i - start] = header[i] }
        }
        let bitmapEnd = Self.bitmapOffset + bitmapBytes
        let from = max(start, Self.bitmapOffset)
        let to = min(end, bitmapEnd)
        if from < to {
            // Whole 64-bit words, little endian; the bitmap offset and block sizes are multiples of 8,
            // so only the last word of the bitmap can be cut short (bitmaps end on 32-bit words).
            bytes.withUnsafeMutableBytes { out in
                var offset = from
                while offset < to {
                    let word = clean.words[(offset - Self.bitmapOffset) / 8].littleEndian
                    let count = min(8, to - offset)
                    withUnsafeBytes(of: word) { source in
                        guard let target = out.baseAddress, let from = source.baseAddress else { return }
                        target.advanced(by: offset - start).copyMemory(from: from, byteCount: count)
                    }
                    offset += count
                }
            }
        }
        return bytes
    }

    /// Decodes an image read from the device.
    ///
    /// Returns the clean bitmap if the header is valid, or why it is not.
    public func decode(_ image: [UInt8]) -> Result<DecodedDiskLog, DiskFormatError> {
        guard image.count >= Self.headerSize else { return .failure(.truncated(image.count)) }
        let magic: UInt32 = loadLittleEndian(image, at: 0)
        guard magic == Self.magic else { return .failure(.badMagic(magic)) }
        let version: UInt32 = loadLittleEndian(image, at: 4)
        guard version == Self.version else { return .failure(.unsupportedVersion(version)) }
        let recorded: UInt64 = loadLittleEndian(image, at: 8)
        // Regions the disk knows about; the device may have grown or shrunk since.
        let known = min(recorded, regionCount)
        var clean = Bitmap(count: regionCount)
        let neededBytes = Self.bitmapOffset + Int((known + 7) / 8)
        guard image.count >= neededBytes else { return .failure(.truncated(image.count)) }
        var bit: UInt64 = 0
        while bit < known {
            let word = Int(bit / 64)
            var value: UInt64 = 0
            for b in 0 ..< 8 {
                let index = Self.bitmapOffset + word * 8 + b
                if index < image.count { value |= UInt64(image[index]) << (UInt64(b) * 8) }
            }
            let validBits = known - bit
            if validBits < 64 { value &= (1 << validBits) - 1 }
            clean.setWord(word, value)
            bit += 64
        }
        var generation: UInt64 = 0
        if image.count >= Self.generationOffset + Self.generationRecordSize,
           loadLittleEndian(image, at: Self.generationOffset) as UInt32 == Self.generationMagic {
            generation = loadLittleEndian(image, at: Self.generationOffset + 8)
        }
        return .success(DecodedDiskLog(recordedRegions: recorded, clean: clean, generation: generation))
    }
}

/// A valid on-disk log: how many regions its header records and its clean bitmap, cut or extended to
/// the current region count (regions the disk did not know are not clean).
public struct DecodedDiskLog: Sendable, Equatable {
    public var recordedRegions: UInt64
    public var clean: Bitmap
    /// The recovery generation a clustered log recorded (0: none).
    public var generation: UInt64 = 0
}

/// Why an on-disk log image was not usable. Any of these means every region is resynced.
public enum DiskFormatError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(Int)
    case badMagic(UInt32)
    case unsupportedVersion(UInt32)

    public var description: String {
        switch self {
        case let .truncated(n): "log image truncated at \(n) bytes"
        case let .badMagic(m): "bad magic 0x\(String(m, radix: 16)) (expected 0x4d695272 \"MiRr\")"
        case let .unsupportedVersion(v): "unsupported log version \(v) (expected 2)"
        }
    }
}

@inline(__always)
func appendLittleEndian<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
    var v = value.littleEndian
    withUnsafeBytes(of: &v) { bytes.append(contentsOf: $0) }
}

@inline(__always)
func loadLittleEndian<T: FixedWidthInteger>(_ bytes: [UInt8], at offset: Int) -> T {
    bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
}
