import PropertyBased
import Testing
@testable import MirrorLogCore

// MARK: Operations

/// One step of a random scenario. Fields are raw numbers so that shrinking works on them.
struct Op: Sendable, CustomStringConvertible {
    enum Kind: String, Sendable {
        case mark, clear, flush, flushMarks, setSync, setUnsync, resyncWork, inSync, isClean, remoteRecovering, syncCount, suspend, resume
    }

    var kindRoll: Int
    var memberIndex: Int
    var rawRegions: [Int]

    var kind: Kind {
        switch kindRoll {
        case 0 ..< 15: .mark
        case 15 ..< 28: .clear
        case 28 ..< 31: .flush
        case 31 ..< 36: .flushMarks
        case 36 ..< 48: .setSync
        case 48 ..< 54: .setUnsync
        case 54 ..< 66: .resyncWork
        case 66 ..< 74: .inSync
        case 74 ..< 82: .isClean
        case 82 ..< 90: .remoteRecovering
        case 90 ..< 95: .syncCount
        case 95 ..< 98: .suspend
        default: .resume
        }
    }

    /// Regions for a log of `n` regions; about one in 23 is out of range.
    func regions(_ n: UInt64) -> [UInt64] {
        rawRegions.map { $0 % 23 == 22 ? n + UInt64($0 % 3) : UInt64($0) % n }
    }

    var description: String { "\(kind)(m\(memberIndex), \(rawRegions))" }

    static let generator = zip(Gen.int(in: 0 ... 99), Gen.int(in: 0 ... 2), Gen.int(in: 0 ... 100_000).array(of: 1 ... 4))
        .map { Op(kindRoll: $0, memberIndex: $1, rawRegions: $2) }
}

// MARK: Reference model

/// The semantics of REFERENCE.md section 2 written the obvious way, with sets and dictionaries.
struct ReferenceModel {
    let n: UInt64
    var sync: [Bool]
    var marks: [MemberID: Set<UInt64>] = [:]
    var recovering: [UInt64: MemberID] = [:]
    /// GET_RESYNC_WORK searches forward from here; RESUME restarts it (as the kernel's own logs do).
    var cursor: UInt64 = 0

    static let reRequestReturnsHeldRegion = true

    init(regions n: UInt64, inSync: Bool) {
        self.n = n
        sync = Array(repeating: inSync, count: Int(n))
    }

    func held(_ r: UInt64) -> Bool { marks.values.contains { $0.contains(r) } }
    func clean(_ r: UInt64) -> Bool { sync[Int(r)] && !held(r) }
    var syncCount: UInt64 { UInt64(sync.filter { $0 }.count) }
    var lowestOutOfSync: UInt64 { sync.firstIndex(of: false).map(UInt64.init) ?? n }
    func inRange(_ rs: [UInt64]) -> Bool { rs.allSatisfy { $0 < n } }

    /// The reply the engine must give, after applying `op` to the model.
    mutating func apply(_ op: Op, member m: MemberID) -> Reply {
        let rs = op.regions(n)
        let r = rs[0]
        let einval = Reply(error: -22, payload: .none)
        switch op.kind {
        case .mark, .flushMarks:
            guard inRange(rs) else { return einval }
            marks[m, default: []].formUnion(rs)
            return .ok
        case .clear:
            guard inRange(rs) else { return einval }
            marks[m, default: []].subtract(rs)
            return .ok
        case .flush:
            return .ok
        case .setSync, .setUnsync:
            guard r < n else { return einval }
            recovering[r] = nil
            sync[Int(r)] = op.kind == .setSync
            return .ok
        case .resyncWork:
            // cmirrord answers a member that still holds a region with that region again (its earlier
            // reply was lost: the kernel recovers one region at a time). The engine does not yet; see
            // KernelResendTests. Flip this when it does.
            if Self.reRequestReturnsHeldRegion, let held = recovering.filter({ $0.value == m }).keys.min() {
                return Reply(payload: .resyncWork(held))
            }
            var candidate = cursor
            while candidate < n, sync[Int(candidate)] || recovering[candidate] != nil { candidate += 1 }
            guard candidate < n else {
                cursor = n
                return Reply(payload: .resyncWork(nil))
            }
            recovering[candidate] = m
            cursor = candidate + 1
            return Reply(payload: .resyncWork(candidate))
        case .inSync:
            guard r < n else { return einval }
            return Reply(payload: .flag(sync[Int(r)]))
        case .isClean:
            guard r < n else { return einval }
            return Reply(payload: .flag(clean(r)))
        case .remoteRecovering:
            guard r < n else { return einval }
            let elsewhere = recovering[r].map { $0 != m } ?? false
            return Reply(payload: .remoteRecovering(isRecovering: elsewhere, inSyncHint: lowestOutOfSync))
        case .syncCount:
            return Reply(payload: .count(syncCount))
        case .suspend:
            recovering = [:]
            return .ok
        case .resume:
            recovering = [:]
            cursor = 0
            return .ok
        }
    }
}

/// Sends `op` to the engine and returns its reply (suspend is PRESUSPEND then POSTSUSPEND).
func send(_ op: Op, to h: inout Harness, regionCount n: UInt64, member m: MemberID) -> Reply {
    let rs = op.regions(n)
    switch op.kind {
    case .mark: return h.reply(.markRegion, regions(rs), from: m)
    case .clear: return h.reply(.clearRegion, regions(rs), from: m)
    case .flush: return h.reply(.flush, from: m)
    case .flushMarks: return h.reply(.flush, regions(rs), from: m)
    case .setSync: return h.reply(.setRegionSync, .regionSync(region: rs[0], inSync: true), from: m)
    case .setUnsync: return h.reply(.setRegionSync, .regionSync(region: rs[0], inSync: false), from: m)
    case .resyncWork: return h.reply(.getResyncWork, from: m)
    case .inSync: return h.reply(.inSync, .region(rs[0]), from: m)
    case .isClean: return h.reply(.isClean, .region(rs[0]), from: m)
    case .remoteRecovering: return h.reply(.isRemoteRecovering, .region(rs[0]), from: m)
    case .syncCount: return h.reply(.getSyncCount, from: m)
    case .suspend:
        let pre = h.reply(.presuspend, from: m)
        let post = h.reply(.postsuspend, from: m)
        return pre == .ok ? post : pre
    case .resume: return h.reply(.resume, from: m)
    }
}

/// Differences between the engine's log and the model, plus broken invariants. Empty when all is well.
func violations(of log: MirrorLog, against model: ReferenceModel, members: [MemberID]) -> [String] {
    var found: [String] = []
    let n = model.n
    if log.syncCount != model.syncCount { found.append("syncCount \(log.syncCount), model \(model.syncCount)") }
    if log.syncCount != log.sync.popCount { found.append("syncCount \(log.syncCount) != popcount \(log.sync.popCount)") }
    if log.recovering != model.recovering { found.append("recovering \(log.recovering), model \(model.recovering)") }
    for m in members {
        let engineMarks = log.marks.regions(of: m)
        let modelMarks = model.marks[m] ?? []
        for r in 0 ..< n where (engineMarks?[r] ?? false) != modelMarks.contains(r) {
            found.append("mark of \(m) on region \(r): engine \(engineMarks?[r] ?? false)")
        }
    }
    for r in 0 ..< n {
        let inSync = log.sync[r], clean = log.clean[r]
        if inSync != model.sync[Int(r)] { found.append("region \(r): in sync \(inSync), model \(model.sync[Int(r)])") }
        if clean != model.clean(r) { found.append("region \(r): clean \(clean), model \(model.clean(r))") }
        if clean && !inSync { found.append("region \(r): clean but not in sync") }
        if clean && log.marks.isHeld(r) { found.append("region \(r): clean but marked") }
        if let owner = log.recovering[r], inSync { found.append("region \(r): recovering by \(owner) but in sync") }
    }
    var copy = log
    let hint = copy.lowestUnsyncedRegion()
    if hint > model.lowestOutOfSync { found.append("hint \(hint) above lowest out-of-sync region \(model.lowestOutOfSync)") }
    return found
}

// MARK: Properties

@Suite struct PropertyTests {
    static let scenario = zip(Gen.int(in: 1 ... 200), Gen.int(in: 1 ... 3), Gen.bool, Op.generator.array(of: 1 ... 60))

    @Test func engineMatchesReferenceModel() async {
        await propertyCheck(count: 200, input: Self.scenario) { regionCount, memberCount, nosync, ops in
            let n = UInt64(regionCount)
            let members = Array([memberA, memberB, memberC].prefix(memberCount))
            var h = Harness()
            #expect(h.reply(.constructor, ctr("\(n * 8) core 8" + (nosync ? " nosync" : ""))) == .ok)
            #expect(h.reply(.resume) == .ok)
            var model = ReferenceModel(regions: n, inSync: nosync)
            for (step, op) in ops.enumerated() {
                let m = members[op.memberIndex % members.count]
                let before = model.recovering
                let expected = model.apply(op, member: m)
                let actual = send(op, to: &h, regionCount: n, member: m)
                #expect(actual == expected, "step \(step): \(op) from \(m)")
                if case let .resyncWork(.some(r)) = actual.payload {
                    #expect(before[r] == nil || (ReferenceModel.reRequestReturnsHeldRegion && before[r] == m), "step \(step): region \(r) handed out while \(before[r].map { "\($0)" } ?? "") recovers it")
                }
                if case let .remoteRecovering(_, hint) = actual.payload {
                    #expect(hint <= model.lowestOutOfSync, "step \(step): hint \(hint)")
                    #expect(hint == n || !model.sync[Int(hint)], "step \(step): hint \(hint) is an in-sync region")
                }
                guard let log = h.log else {
                    Issue.record("log vanished at step \(step)")
                    return
                }
                let problems = violations(of: log, against: model, members: members)
                #expect(problems.isEmpty, "step \(step) after \(op) from \(m): \(problems.prefix(5))")
                if !problems.isEmpty || actual != expected { return }
            }
        }
    }

    /// Simulates the log device: applies every write the engine asks for, and checks that after each
    /// flush the device holds exactly the engine's clean bitmap — so every mark is on disk before the
    /// kernel writes, and a crash at any point reloads a state with no marked region clean.
    @Test func diskImageFollowsCleanBitmap() async {
        let input = zip(Gen.int(in: 1 ... 5000), Gen.bool, Op.generator.array(of: 1 ... 40))
        await propertyCheck(count: 60, input: input) { regionCount, bigBlocks, ops in
            let n = UInt64(regionCount)
            let blockSize = bigBlocks ? 4096 : 512
            var h = Harness()
            let format = DiskLogFormat(regionCount: n, blockSize: blockSize)
            var device = zeros(format.imageBytes)
            func apply(_ writes: [DiskWrite]) {
                for w in writes {
                    #expect(w.offset % UInt64(blockSize) == 0 && w.bytes.count % blockSize == 0 && !w.bytes.isEmpty)
                    device.replaceSubrange(Int(w.offset) ..< Int(w.offset) + w.bytes.count, with: w.bytes)
                }
            }
            _ = h.send(.constructor, ctr("\(n * 2) disk 7:3 2 nosync"))
            _ = h.engine.completeOpen(luid: h.luid, .success(DeviceAttachment(major: 7, minor: 3, blockSize: blockSize, sizeBytes: 1 << 30)))
            _ = h.send(.resume)
            guard case let .writeDevice(_, initial) = h.engine.completeRead(luid: h.luid, .success(device)).action else {
                Issue.record("no initial write")
                return
            }
            apply(initial)
            _ = h.engine.completeWrite(luid: h.luid, .success(()))
            for (step, op) in ops.enumerated() {
                let rs = op.regions(n).filter { $0 < n }
                guard let r = rs.first else { continue }
                let output: [Directive]
                switch op.kind {
                case .mark: output = h.send(.markRegion, regions(rs))
                case .clear: output = h.send(.clearRegion, regions(rs))
                case .setSync: output = h.send(.setRegionSync, .regionSync(region: r, inSync: true))
                case .setUnsync: output = h.send(.setRegionSync, .regionSync(region: r, inSync: false))
                case .flushMarks: output = h.send(.flush, regions(rs))
                default: output = h.send(.flush)
                }
                if case let .writeDevice(_, writes) = output.action {
                    apply(writes)
                    #expect(h.engine.completeWrite(luid: h.luid, .success(())).action == .reply(.ok))
                }
                let isFlush = op.kind == .flushMarks || ![.mark, .clear, .setSync, .setUnsync].contains(op.kind)
                guard isFlush, let log = h.log else { continue }
                let onDisk = format.decode(device)
                #expect(onDisk == .success(DecodedDiskLog(recordedRegions: n, clean: log.clean)), "step \(step): \(op)")
                #expect(!log.hasDirtyBlocks)
                if case let .success(decoded) = onDisk {
                    for held in log.marks.holders.flatMap({ h in (0 ..< n).filter { h.regions[$0] } }) where decoded.clean[held] {
                        Issue.record("step \(step): region \(held) is marked but clean on disk")
                    }
                }
            }
        }
    }

    /// Codec: any request of any type round-trips through the wire format.
    @Test func requestRoundTrip() async {
        let input = zip(Gen.int(in: 0 ... 16), Gen<UInt64>.value(), Gen<UInt32>.value(in: 1 ... 3), Gen<UInt64>.value().array(of: 1 ... 40), Gen.letterOrNumber.string(of: 1 ... 128))
        await propertyCheck(count: 300, input: input) { typeIndex, luid, version, regionList, uuid in
            let type = RequestType.allCases[typeIndex]
            let payload: RequestPayload = switch type {
            case .constructor: ctr("\(luid) core \(version)", nul: luid % 2 == 0)
            case .isClean, .inSync, .isRemoteRecovering: .region(regionList[0])
            case .markRegion, .clearRegion, .flush: regions(regionList)
            case .setRegionSync: .regionSync(region: regionList[0], inSync: luid % 2 == 1)
            default: .none
            }
            let request = makeRequest(type, payload, luid: luid, uuid: uuid, version: version, seq: UInt32(truncatingIfNeeded: luid))
            #expect((try? WireDecoder.decode(encoded(request))) == request)
        }
    }
}
