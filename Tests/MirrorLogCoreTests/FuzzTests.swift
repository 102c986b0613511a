import PropertyBased
import Testing
@testable import MirrorLogCore

/// Malformed and arbitrary input must be refused with a typed error or a negative errno, never trap.
@Suite struct FuzzTests {
    static let validDatagrams: [[UInt8]] = RequestType.allCases.map { encoded(makeRequest($0, CodecTests.samplePayload($0))) }

    @Test func decoderRefusesOrAcceptsMutatedDatagrams() async {
        let edit = zip(Gen.int(in: 0 ... 260), Gen<UInt8>.value())
        let input = zip(Gen.int(in: 0 ... 16), edit.array(of: 1 ... 4), Gen.int(in: -40 ... 40))
        await propertyCheck(count: 2000, input: input) { typeIndex, edits, resize in
            var bytes = Self.validDatagrams[typeIndex]
            for (offset, value) in edits where offset < bytes.count { bytes[offset] = value }
            if resize < 0 { bytes.removeLast(min(-resize, bytes.count)) } else { bytes += zeros(resize) }
            do {
                let request = try WireDecoder.decode(bytes)
                // Whatever decoded is consistent with the bytes it came from.
                #expect(request.type.rawValue == bytes.loadLE(UInt32.self, at: 36 + 152) & 0xFF)
                #expect(request.header.seq == bytes.loadLE(UInt32.self, at: 36 + 148))
                #expect((1 ... 3).contains(request.header.version))
                #expect(request.header.uuidBytes.count <= 128 && !request.header.uuidBytes.contains(0))
                #expect(Int(bytes.loadLE(UInt32.self, at: 0)) <= bytes.count)
            } catch {
                // a typed error is the expected outcome for most mutations
                #expect(!String(describing: error).isEmpty)
            }
        }
    }

    /// Arbitrary well-framed requests from several members, to two logs and an unknown one: the engine
    /// answers every one with a known errno and its invariants hold throughout.
    @Test func engineSurvivesArbitraryRequests() async {
        let step = zip(Gen.int(in: 0 ... 16), Gen.int(in: 0 ... 2), Gen.int(in: 0 ... 3), Gen<UInt64>.value(in: 0 ... 40).array(of: 1 ... 3), Gen.bool)
        await propertyCheck(count: 150, input: step.array(of: 1 ... 80)) { steps in
            var h = Harness()
            let uuids: [UInt64: String] = [1: "LVM-a", 2: "LVM-b", 3: "LVM-c"]
            _ = h.reply(.constructor, ctr("64 core 2"), luid: 1, uuid: "LVM-a")       // 32 regions
            _ = h.reply(.constructor, ctr("80 core 2 nosync"), luid: 2, uuid: "LVM-b") // 40 regions
            for (typeIndex, memberIndex, luidIndex, regionList, flag) in steps {
                let type = RequestType.allCases[typeIndex]
                let luid = UInt64(luidIndex)  // 0 and 3 are unknown (3 may get constructed)
                let payload: RequestPayload = switch type {
                case .constructor: ctr(flag ? "32 core 2" : "32 core 2 nosync", nul: regionList[0] % 2 == 0)
                case .isClean, .inSync, .isRemoteRecovering: .region(regionList[0])
                case .markRegion, .clearRegion: regions(regionList)
                case .flush: flag ? regions(regionList) : .none
                case .setRegionSync: .regionSync(region: regionList[0], inSync: flag)
                default: .none
                }
                let member = [memberA, memberB, memberC][memberIndex]
                let known = h.engine.logs[luid] != nil
                let output = h.send(type, payload, luid: luid, uuid: uuids[luid] ?? "LVM-zero", from: member)
                guard case let .reply(reply) = output.action else {
                    Issue.record("core log asked for a device action: \(output.action)")
                    return
                }
                #expect([0, EINVAL, ESRCH, EEXIST].contains(reply.error), "\(type) → \(reply.error)")
                // Errors carry no data, except -ESRCH: a zeroed placeholder sized for the kernel's retry.
                if reply.error != 0 && reply.error != ESRCH { #expect(reply.payload == .none) }
                if reply.error == ESRCH { #expect(reply.payload == LogEngine.placeholderPayload(for: type)) }
                if !known && type == .destructor { #expect(reply.error == 0) }
                if !known && type != .destructor && type != .constructor { #expect(reply.error == ESRCH) }
                if known && type == .constructor { #expect(reply.error == 0, "known luid and uuid: state kept") }
                for log in h.engine.logs.values {
                    #expect(log.syncCount == log.sync.popCount)
                    for r in 0 ..< log.regionCount where log.clean[r] {
                        #expect(log.sync[r] && !log.marks.isHeld(r), "luid \(log.luid) region \(r)")
                    }
                }
            }
        }
    }

    @Test func constructorParserNeverTraps() async {
        let words = ["core", "disk", "clustered-core", "clustered-disk", "sync", "nosync", "block_on_error", "7:3", "/dev/x", "0", "1", "2", "3", "1024", "65536", "4294967296", "-1", "", ":", "a:b"]
        // Lengths stay below UInt64.max - 2^32: the overflow near UInt64.max is a known bug (see ConstructorArgumentsTests).
        let input = zip(Gen<UInt64>.value(in: 0 ... (UInt64.max - (1 << 32))), Gen.int(in: 0 ..< words.count).array(of: 0 ... 6))
        await propertyCheck(count: 1000, input: input) { length, picks in
            let text = ([String(length)] + picks.map { words[$0] }).joined(separator: " ")
            switch Result(catching: { () throws(ConstructorError) in try ConstructorArguments.parse(text) }) {
            case let .success(a):
                #expect(a.regionCount >= 1 && a.regionCount <= ConstructorArguments.maxRegionCount)
                #expect(a.regionSize >= 2 && a.regionSize.nonzeroBitCount == 1 && UInt64(a.regionSize) <= a.lengthSectors)
                #expect(a.logType.hasLogDevice == (a.logDevice != nil))
            case let .failure(e):
                #expect(!e.description.isEmpty)
            }
        }
    }
}

extension Array where Element == UInt8 {
    func loadLE<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        guard offset + MemoryLayout<T>.size <= count else { return 0 }
        return self[offset ..< offset + MemoryLayout<T>.size].reversed().reduce(0) { $0 << 8 | T($1) }
    }
}
