import MirrorLogCore

/// A deterministic dm-raid1 request mix, pre-encoded as kernel datagrams, and a `LogEngine` set up to
/// serve it (CTR + RESUME already handled). Everything here runs outside the measured region.
///
/// The mix follows how dm-raid1 drives its log (REFERENCE.md section 1): per write burst the kernel
/// asks IS_REMOTE_RECOVERING and IN_SYNC for the region being written, then at flush time sends the
/// CLEAR_REGION batch of the writes that completed since the last flush, the MARK_REGION batch of the
/// new writes (at most 32 regions each), then FLUSH. Every fourth burst a recovery trickle follows:
/// GET_RESYNC_WORK and SET_REGION_SYNC. The cycle wraps: the first burst clears the marks of the last,
/// so replaying the cycle any number of times is a steady state (one batch of marks outstanding).
struct WorkloadSpec: Sendable {
    enum LogKind: Sendable { case core, disk }

    var kind: LogKind = .core
    /// Device length in sectors; with 1024-sector regions, 2^30 sectors gives 2^20 regions.
    var lengthSectors: UInt64 = 1 << 30
    var regionSize: UInt32 = 1024
    /// Write bursts in one cycle.
    var bursts = 128
    /// Marks travel inside FLUSH (protocol 3 `integrated_flush`) instead of a separate MARK_REGION.
    var integratedFlush = false

    var regionCount: UInt64 { (lengthSectors + UInt64(regionSize) - 1) / UInt64(regionSize) }
    var constructorString: String {
        switch kind {
        case .core: "\(lengthSectors) core \(regionSize) nosync"
        case .disk: "\(lengthSectors) disk 253:2 \(regionSize) nosync"
        }
    }
}

/// Small deterministic generator (SplitMix64), so every run replays the same mix.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func next(below bound: UInt64) -> UInt64 { next() % bound }
}

/// Datagrams of one cycle, stored back to back in one buffer (as a receive loop would see them).
struct EncodedCycle: Sendable {
    var bytes: [UInt8] = []
    var ranges: [Range<Int>] = []
    var types: [RequestType] = []

    var count: Int { ranges.count }

    mutating func append(_ datagram: [UInt8], type: RequestType) {
        let start = bytes.count
        bytes.append(contentsOf: datagram)
        ranges.append(start ..< bytes.count)
        types.append(type)
    }

    /// The datagram at `index`: a slice of the shared buffer (no copy).
    @inline(__always)
    func datagram(_ index: Int) -> ArraySlice<UInt8> { bytes[ranges[index]] }

    func histogram() -> [(RequestType, Int)] {
        var counts: [RequestType: Int] = [:]
        for t in types { counts[t, default: 0] += 1 }
        return counts.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key, $0.value) }
    }
}

let benchmarkLUID: UInt64 = 0x5EED
let benchmarkUUID = "LVM-benchMirrorLogUuid0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"

/// Builds datagrams the way the kernel frames them.
struct RequestFactory {
    var seq: UInt32 = 1
    let version: UInt32
    let uuidBytes: [UInt8] = Array(benchmarkUUID.utf8)

    init(version: UInt32 = 3) { self.version = version }

    mutating func datagram(_ type: RequestType, _ payload: RequestPayload) -> [UInt8] {
        let header = RequestHeader(luid: benchmarkLUID, uuidBytes: uuidBytes[...], version: version, seq: seq, rawRequestType: type.rawValue)
        seq &+= 1
        var buffer: [UInt8] = []
        WireEncoder.encodeRequest(KernelRequest(header: header, type: type, payload: payload), into: &buffer)
        return buffer
    }

    mutating func request(_ type: RequestType, _ payload: RequestPayload) -> KernelRequest {
        let bytes = datagram(type, payload)
        do { return try WireDecoder.decode(bytes) } catch { fatalError("benchmark setup: cannot decode own \(type): \(error)") }
    }
}

/// The regions of one burst: 1 to 32 of them, either a sequential run (streaming writes) or
/// scattered (random I/O), anywhere in the device.
func burstRegions(_ rng: inout SplitMix64, regionCount: UInt64) -> [UInt64] {
    let size = Int(rng.next(below: 32)) + 1
    if rng.next(below: 2) == 0 {
        let start = rng.next(below: regionCount - UInt64(size))
        return (0 ..< UInt64(size)).map { start + $0 }
    }
    var set = Set<UInt64>()
    var regions: [UInt64] = []
    while regions.count < size {
        let r = rng.next(below: regionCount)
        if set.insert(r).inserted { regions.append(r) }
    }
    return regions
}

/// The pre-encoded cycle for `spec`.
func makeCycle(_ spec: WorkloadSpec, factory: inout RequestFactory) -> EncodedCycle {
    var rng = SplitMix64(state: 0x6D69_7272_6F72_6C67)
    let bursts = (0 ..< spec.bursts).map { _ in burstRegions(&rng, regionCount: spec.regionCount) }
    var cycle = EncodedCycle()
    for (index, regions) in bursts.enumerated() {
        let previous = bursts[(index + bursts.count - 1) % bursts.count]
        let first = regions[0]
        cycle.append(factory.datagram(.isRemoteRecovering, .region(first)), type: .isRemoteRecovering)
        cycle.append(factory.datagram(.inSync, .region(first)), type: .inSync)
        cycle.append(factory.datagram(.clearRegion, .regions(RegionList(previous))), type: .clearRegion)
        if spec.integratedFlush {
            cycle.append(factory.datagram(.flush, .regions(RegionList(regions))), type: .flush)
        } else {
            cycle.append(factory.datagram(.markRegion, .regions(RegionList(regions))), type: .markRegion)
            cycle.append(factory.datagram(.flush, .none), type: .flush)
        }
        if index % 4 == 3 {
            // Recovery trickle. A nosync log has no resync work, so GET_RESYNC_WORK answers "none";
            // SET_REGION_SYNC(r, 1) re-affirms a synced region: the same code as a finished recovery.
            cycle.append(factory.datagram(.getResyncWork, .none), type: .getResyncWork)
            let r = rng.next(below: spec.regionCount)
            cycle.append(factory.datagram(.setRegionSync, .regionSync(region: r, inSync: true)), type: .setRegionSync)
        }
    }
    return cycle
}

/// Runs `output` to a reply, answering device actions the way the daemon's shell would (successfully).
/// Only for setup and for the disk-log benchmark.
@inline(__always)
func drive(_ engine: inout LogEngine, _ output: EngineOutput) -> Reply {
    var output = output
    while true {
        switch output.action {
        case let .reply(reply):
            return reply
        case let .openDevice(luid, _):
            output = engine.completeOpen(luid: luid, .success(DeviceAttachment(major: 253, minor: 2, blockSize: 4096, sizeBytes: 64 << 20)))
        case let .readDevice(luid, byteCount):
            output = engine.completeRead(luid: luid, .success([UInt8](repeating: 0, count: byteCount)))
        case let .writeDevice(luid, _):
            output = engine.completeWrite(luid: luid, .success(()))
        case let .closeDevice(_, then):
            return then
        }
    }
}

/// An engine with the benchmark's log constructed and resumed.
func makeEngine(_ spec: WorkloadSpec, factory: inout RequestFactory) -> LogEngine {
    var engine = LogEngine()
    let ctr = factory.request(.constructor, .constructor(ConstructorString(text: spec.constructorString, isNULTerminated: false)))
    let ctrReply = drive(&engine, engine.handle(ctr))
    precondition(ctrReply.error == 0, "benchmark setup: CTR '\(spec.constructorString)' failed: \(ctrReply)")
    let resumeReply = drive(&engine, engine.handle(factory.request(.resume, .none)))
    precondition(resumeReply.error == 0, "benchmark setup: RESUME failed: \(resumeReply)")
    return engine
}
