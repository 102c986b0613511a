import PropertyBased
import Testing
@testable import MirrorLogCore

@Suite struct DiskFormatTests {
    static func bitmap(_ count: UInt64, set: [UInt64]) -> Bitmap {
        var b = Bitmap(count: count)
        for r in set { b[r] = true }
        return b
    }

    /// A complete image as the kernel's disk log would write it: header, then the bitmap at byte 1024.
    static func image(regions recorded: UInt64, clean: [UInt64], bytes: Int = 4096, magic: UInt32 = 0x4D69_5272, version: UInt32 = 2) -> [UInt8] {
        var image = zeros(bytes)
        image.replaceSubrange(0 ..< 4, with: le(magic))
        image.replaceSubrange(4 ..< 8, with: le(version))
        image.replaceSubrange(8 ..< 16, with: le(recorded))
        for r in clean { image[1024 + Int(r / 8)] |= 1 << UInt8(r % 8) }
        return image
    }

    @Test func headerBytes() {
        let format = DiskLogFormat(regionCount: 0x0102_0304_0506, blockSize: 512)
        let bytes = format.encodeBlocks(0 ..< 1, clean: Bitmap(count: 16))
        #expect(bytes.count == 512)
        #expect(Array(bytes[0 ..< 16]) == hex("72 52 69 4D  02 00 00 00  06 05 04 03 02 01 00 00"))
        #expect(bytes[16...].allSatisfy { $0 == 0 })
        #expect(Array("MiRr".utf8) == Array(bytes[0 ..< 4].reversed()))
    }

    @Test("a clustered log's recovery generation sits after the kernel's 16-byte header, and only when above 0")
    func generationRecord() {
        let format = DiskLogFormat(regionCount: 100, blockSize: 512)
        let clean = Bitmap(count: 100, value: true)
        let plain = format.encodeBlocks(0 ..< format.blockCount, clean: clean)
        #expect(plain[16 ..< 32].allSatisfy { $0 == 0 }, "a local log's image stays exactly the kernel's")
        let recorded = format.encodeBlocks(0 ..< format.blockCount, clean: clean, generation: 0x0102_0304_0506_0708)
        #expect(Array(recorded[0 ..< 16]) == Array(plain[0 ..< 16]), "the kernel's header is untouched")
        #expect(Array(recorded[16 ..< 20]) == [0x6E, 0x67, 0x4C, 0x4D])
        #expect(Array(recorded[24 ..< 32]) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(Array(recorded[1024...]) == Array(plain[1024...]))
        guard case let .success(decoded) = format.decode(recorded), case let .success(kernelImage) = format.decode(plain) else {
            Issue.record("images did not decode")
            return
        }
        #expect(decoded.generation == 0x0102_0304_0506_0708)
        #expect(decoded.clean == clean)
        #expect(kernelImage.generation == 0)
    }

    @Test func bitmapPositions() {
        let count: UInt64 = 300
        let set: [UInt64] = [0, 1, 7, 8, 63, 64, 65, 200, 299]
        let format = DiskLogFormat(regionCount: count, blockSize: 512)
        let image = format.encodeBlocks(0 ..< format.blockCount, clean: Self.bitmap(count, set: set))
        #expect(image.count == 1536)
        #expect(Array(image[0 ..< 16]) == hex("72 52 69 4D 02 00 00 00") + le(count))
        #expect(image[16 ..< 1024].allSatisfy { $0 == 0 })
        for r in 0 ..< count {
            let bit = image[1024 + Int(r / 8)] >> UInt8(r % 8) & 1
            #expect((bit == 1) == set.contains(r), "region \(r)")
        }
        #expect(image[1024] == 0b1000_0011)
        #expect(image[1025] == 0b0000_0001)
        #expect(image[1024 + 37] == 0b0000_1000)   // 299 = 37*8 + 3
        #expect(image[(1024 + 38)...].allSatisfy { $0 == 0 })
    }

    @Test func bitmapBytesAreWhole32BitWords() {
        #expect(DiskLogFormat(regionCount: 0, blockSize: 512).bitmapBytes == 0)
        #expect(DiskLogFormat(regionCount: 1, blockSize: 512).bitmapBytes == 4)
        #expect(DiskLogFormat(regionCount: 32, blockSize: 512).bitmapBytes == 4)
        #expect(DiskLogFormat(regionCount: 33, blockSize: 512).bitmapBytes == 8)
        #expect(DiskLogFormat(regionCount: 128, blockSize: 512).bitmapBytes == 16)
        #expect(DiskLogFormat(regionCount: 129, blockSize: 512).bitmapBytes == 20)
    }

    @Test func imageBytesRoundToBlocks() {
        #expect(DiskLogFormat(regionCount: 1, blockSize: 512).imageBytes == 1536)
        #expect(DiskLogFormat(regionCount: 128, blockSize: 512).imageBytes == 1536)
        #expect(DiskLogFormat(regionCount: 4096, blockSize: 512).imageBytes == 1536)   // 1024 + 512
        #expect(DiskLogFormat(regionCount: 4097, blockSize: 512).imageBytes == 2048)
        #expect(DiskLogFormat(regionCount: 1, blockSize: 4096).imageBytes == 4096)
        #expect(DiskLogFormat(regionCount: 24576, blockSize: 4096).imageBytes == 4096) // 1024 + 3072
        #expect(DiskLogFormat(regionCount: 24577, blockSize: 4096).imageBytes == 8192)
        #expect(DiskLogFormat(regionCount: 24577, blockSize: 4096).blockCount == 2)
        #expect(DiskLogFormat(regionCount: 4097, blockSize: 512).blockCount == 4)
    }

    @Test func blockOfWord() {
        let f512 = DiskLogFormat(regionCount: 100_000, blockSize: 512)
        #expect(f512.block(ofWord: 0) == 2)
        #expect(f512.block(ofWord: 63) == 2)
        #expect(f512.block(ofWord: 64) == 3)
        let f4k = DiskLogFormat(regionCount: 100_000, blockSize: 4096)
        #expect(f4k.block(ofWord: 0) == 0)
        #expect(f4k.block(ofWord: 383) == 0)
        #expect(f4k.block(ofWord: 384) == 1)
    }

    @Test func encodeSingleLaterBlock() {
        // Block 3 of a 512-byte-block image covers bitmap bytes 512..1023: regions 4096..8191.
        let format = DiskLogFormat(regionCount: 8192, blockSize: 512)
        let bytes = format.encodeBlocks(3 ..< 4, clean: Self.bitmap(8192, set: [0, 4096, 4097, 8191]))
        #expect(bytes.count == 512)
        #expect(bytes[0] == 0b11)
        #expect(bytes[511] == 0x80)
        #expect(bytes[1 ..< 511].allSatisfy { $0 == 0 })
    }

    @Test func decodeValid() throws {
        let format = DiskLogFormat(regionCount: 100, blockSize: 512)
        let decoded = try format.decode(Self.image(regions: 100, clean: [0, 5, 64, 99], bytes: 1536)).get()
        #expect(decoded.recordedRegions == 100)
        #expect(decoded.clean == Self.bitmap(100, set: [0, 5, 64, 99]))
    }

    @Test func decodeBadMagic() {
        let format = DiskLogFormat(regionCount: 100, blockSize: 512)
        #expect(format.decode(Self.image(regions: 100, clean: [1], magic: 0x1234_5678)) == .failure(.badMagic(0x1234_5678)))
        #expect(format.decode(zeros(1536)) == .failure(.badMagic(0)))
        // big-endian magic is wrong
        #expect(format.decode(Self.image(regions: 100, clean: [1], magic: 0x7252_694D)) == .failure(.badMagic(0x7252_694D)))
    }

    @Test func decodeBadVersion() {
        let format = DiskLogFormat(regionCount: 100, blockSize: 512)
        #expect(format.decode(Self.image(regions: 100, clean: [], version: 1)) == .failure(.unsupportedVersion(1)))
        #expect(format.decode(Self.image(regions: 100, clean: [], version: 3)) == .failure(.unsupportedVersion(3)))
    }

    @Test func decodeTruncated() {
        let format = DiskLogFormat(regionCount: 100, blockSize: 512)
        let full = Self.image(regions: 100, clean: [99])
        #expect(format.decode([]) == .failure(.truncated(0)))
        #expect(format.decode(Array(full.prefix(15))) == .failure(.truncated(15)))
        #expect(format.decode(Array(full.prefix(1000))) == .failure(.truncated(1000)))
        #expect(format.decode(Array(full.prefix(1024 + 12))) == .failure(.truncated(1036)))  // needs 13 bitmap bytes
        #expect((try? format.decode(Array(full.prefix(1024 + 13))).get())?.clean == Self.bitmap(100, set: [99]))
    }

    @Test func decodeFewerRecordedRegions() throws {
        // The device grew: regions beyond the old end are not clean, even if stray bits are set on disk.
        let format = DiskLogFormat(regionCount: 200, blockSize: 512)
        let decoded = try format.decode(Self.image(regions: 70, clean: Array(0 ..< 70) + [70, 71, 150])).get()
        #expect(decoded.recordedRegions == 70)
        #expect(decoded.clean == Self.bitmap(200, set: Array(0 ..< 70)))
        #expect(decoded.clean.count == 200)
    }

    @Test func decodeMoreRecordedRegions() throws {
        // The device shrank: the extra bits are dropped.
        let format = DiskLogFormat(regionCount: 10, blockSize: 512)
        let decoded = try format.decode(Self.image(regions: 1000, clean: Array(0 ..< 1000))).get()
        #expect(decoded.recordedRegions == 1000)
        #expect(decoded.clean == Bitmap(count: 10, value: true))
        #expect(decoded.clean.words == [0x3FF])
    }

    @Test func encodeDecodeRoundTrip() async {
        let input = zip(Gen<UInt64>.value(in: 0 ... 5000), Gen.bool, Gen<UInt64>.bitSet.array(of: 79))
        await propertyCheck(count: 150, input: input) { count, bigBlocks, words in
            var clean = Bitmap(count: count)
            for (w, value) in words.enumerated() where UInt64(w) * 64 < count { clean.setWord(w, value) }
            let format = DiskLogFormat(regionCount: count, blockSize: bigBlocks ? 4096 : 512)
            let image = format.encodeBlocks(0 ..< format.blockCount, clean: clean)
            #expect(image.count == format.imageBytes)
            #expect(image.count % format.blockSize == 0)
            #expect(image.count >= 1024 + format.bitmapBytes)
            let decoded = format.decode(image)
            #expect(decoded == .success(DecodedDiskLog(recordedRegions: count, clean: clean)))
            // Encoding block by block gives the same image.
            var pieces: [UInt8] = []
            for b in 0 ..< format.blockCount { pieces += format.encodeBlocks(b ..< b + 1, clean: clean) }
            #expect(pieces == image)
        }
    }
}
