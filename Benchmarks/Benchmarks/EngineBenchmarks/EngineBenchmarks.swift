import Benchmark
import MirrorLogCore

// One inner iteration = one kernel request. With `scalingFactor: .kilo` each measured outer iteration
// serves 1,000 requests, and the scaled (`*`) figures the tool prints are per request: throughput in
// requests/s, malloc counts per request. The workload cursor persists across outer iterations, so
// the run keeps cycling through the whole pre-encoded mix (see Workload.swift).

/// Mutable state of one benchmark: the engine, the mix and the reply buffer the daemon would reuse.
final class ServeState: @unchecked Sendable {
    var engine: LogEngine
    let cycle: EncodedCycle
    var reply: [UInt8] = []
    var cursor = 0
    /// Flushes that needed a log-device write (disk log only).
    var deviceWrites = 0

    init(_ spec: WorkloadSpec) {
        var factory = RequestFactory()
        engine = makeEngine(spec, factory: &factory)
        cycle = makeCycle(spec, factory: &factory)
        reply.reserveCapacity(512)
        // Prime: apply the marks of the last burst, which the first burst of the cycle clears, then
        // check every reply of two full cycles before anything is measured.
        for _ in 0 ..< 2 {
            for i in 0 ..< cycle.count {
                let error = serveOne(cycle.datagram(i), engine: &engine, reply: &reply, deviceWrites: &deviceWrites)
                precondition(error == 0, "benchmark setup: \(cycle.types[i]) #\(i) answered \(error)")
            }
        }
        deviceWrites = 0
    }
}

/// The daemon's path for one datagram, minus the syscalls: frame, decode, handle, encode the reply.
/// Device actions (disk log FLUSH) are completed at once, as if the write succeeded.
/// Returns the reply's error field (or a sentinel for a dropped datagram).
@inline(__always)
func serveOne(_ datagram: ArraySlice<UInt8>, engine: inout LogEngine, reply: inout [UInt8], deviceWrites: inout Int) -> Int32 {
    let frame: ULogFrame
    do { frame = try WireDecoder.decodeFrame(datagram) } catch { return Int32.min }
    let request: KernelRequest
    do {
        request = try WireDecoder.decodeRequest(frame)
    } catch {
        let refusal = Reply.failure(.invalidArgument)
        WireEncoder.encodeReply(to: frame.header, refusal, into: &reply)
        return refusal.error
    }
    var output = engine.handle(request)
    var answer: Reply
    while true {
        switch output.action {
        case let .reply(r):
            answer = r
        case let .writeDevice(luid, _):
            deviceWrites &+= 1
            output = engine.completeWrite(luid: luid, .success(()))
            continue
        case .openDevice, .readDevice, .closeDevice:
            fatalError("unexpected device action in steady state: \(output.action)")
        }
        break
    }
    WireEncoder.encodeReply(to: request.header, answer, into: &reply)
    return answer.error
}

/// Serves `count` requests of the cycle from `cursor` on; returns a checksum of the replies.
@inline(never)
func serveRequests(_ count: Int, _ state: ServeState) -> UInt64 {
    var checksum: UInt64 = 0
    var cursor = state.cursor
    let cycle = state.cycle
    let end = cycle.count
    for _ in 0 ..< count {
        let error = serveOne(cycle.datagram(cursor), engine: &state.engine, reply: &state.reply, deviceWrites: &state.deviceWrites)
        checksum = checksum &* 31 &+ UInt64(bitPattern: Int64(error)) &+ UInt64(state.reply.count) &+ UInt64(state.reply[state.reply.count - 1])
        cursor += 1
        if cursor == end { cursor = 0 }
    }
    state.cursor = cursor
    return checksum
}

// MARK: Stage isolation

/// Decode only: decodeFrame + decodeRequest over the cycle.
final class DecodeState: @unchecked Sendable {
    let cycle: EncodedCycle
    var cursor = 0
    init(_ spec: WorkloadSpec) {
        var factory = RequestFactory()
        cycle = makeCycle(spec, factory: &factory)
    }
}

@inline(never)
func decodeRequests(_ count: Int, _ state: DecodeState) -> UInt64 {
    var checksum: UInt64 = 0
    var cursor = state.cursor
    let cycle = state.cycle
    for _ in 0 ..< count {
        do {
            let request = try WireDecoder.decodeRequest(try WireDecoder.decodeFrame(cycle.datagram(cursor)))
            var payloadSum: UInt64 = 0
            switch request.payload {
            case let .region(r): payloadSum = r
            case let .regions(list): payloadSum = UInt64(list.count)
            case let .regionSync(r, s): payloadSum = r &+ (s ? 1 : 0)
            case .none, .constructor: break
            }
            checksum = checksum &* 31 &+ UInt64(request.header.seq) &+ UInt64(request.type.rawValue) &+ payloadSum
        } catch {
            fatalError("decode failed: \(error)")
        }
        cursor += 1
        if cursor == cycle.count { cursor = 0 }
    }
    state.cursor = cursor
    return checksum
}

/// Handle only: the requests are decoded in setup; the loop calls engine.handle.
final class HandleState: @unchecked Sendable {
    var engine: LogEngine
    let cycle: EncodedCycle
    let requests: [KernelRequest]
    var cursor = 0
    init(_ spec: WorkloadSpec) {
        var factory = RequestFactory()
        engine = makeEngine(spec, factory: &factory)
        let cycle = makeCycle(spec, factory: &factory)
        self.cycle = cycle
        requests = (0 ..< cycle.count).map { try! WireDecoder.decodeRequest(try! WireDecoder.decodeFrame(cycle.datagram($0))) }
        for _ in 0 ..< 2 {
            for request in requests {
                guard case let .reply(r) = engine.handle(request).action, r.error == 0 else { fatalError("setup: \(request.type) failed") }
            }
        }
    }
}

@inline(never)
func handleRequests(_ count: Int, _ state: HandleState) -> UInt64 {
    var checksum: UInt64 = 0
    var cursor = state.cursor
    let requests = state.requests
    for _ in 0 ..< count {
        let output = state.engine.handle(requests[cursor])
        if case let .reply(reply) = output.action {
            var payloadSum: UInt64 = 0
            switch reply.payload {
            case let .flag(b): payloadSum = b ? 1 : 0
            case let .count(n): payloadSum = n
            case let .resyncWork(r): payloadSum = r ?? 7
            case let .remoteRecovering(rec, hint): payloadSum = hint &+ (rec ? 1 : 0)
            default: break
            }
            checksum = checksum &* 31 &+ UInt64(bitPattern: Int64(reply.error)) &+ payloadSum &+ UInt64(output.notices.count)
        } else {
            fatalError("unexpected action \(output.action)")
        }
        cursor += 1
        if cursor == requests.count { cursor = 0 }
    }
    state.cursor = cursor
    return checksum
}

/// Encode only: headers and replies are computed in setup; the loop calls encodeReply.
final class EncodeState: @unchecked Sendable {
    let cycle: EncodedCycle
    let work: [(RequestHeader, Reply)]
    var reply: [UInt8] = []
    var cursor = 0
    init(_ spec: WorkloadSpec) {
        var factory = RequestFactory()
        var engine = makeEngine(spec, factory: &factory)
        cycle = makeCycle(spec, factory: &factory)
        var work: [(RequestHeader, Reply)] = []
        for i in 0 ..< cycle.count {
            let request = try! WireDecoder.decodeRequest(try! WireDecoder.decodeFrame(cycle.datagram(i)))
            guard case let .reply(r) = engine.handle(request).action else { fatalError("setup") }
            work.append((request.header, r))
        }
        self.work = work
        reply.reserveCapacity(512)
    }
}

@inline(never)
func encodeReplies(_ count: Int, _ state: EncodeState) -> UInt64 {
    var checksum: UInt64 = 0
    var cursor = state.cursor
    let work = state.work
    for _ in 0 ..< count {
        let (header, reply) = work[cursor]
        WireEncoder.encodeReply(to: header, reply, into: &state.reply)
        checksum = checksum &* 31 &+ UInt64(state.reply.count) &+ UInt64(state.reply[state.reply.count - 1])
        cursor += 1
        if cursor == work.count { cursor = 0 }
    }
    state.cursor = cursor
    return checksum
}

// MARK: Registration

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        // Not .cpuTotal / .instructions: on Linux their sampling allocates (16 mallocs, ~35 KB per
        // measured iteration, seen in an empty loop too), which would pollute the malloc counts; and
        // perf_events is not available in this VM anyway. Time comes from .wallClock.
        metrics: [
            .throughput, .wallClock,
            .mallocCountTotal, .mallocCountSmall, .mallocCountLarge, .mallocBytesCount, .memoryLeakedBytes,
        ],
        timeUnits: .nanoseconds,
        warmupIterations: 20,
        scalingFactor: .kilo,
        maxDuration: .seconds(3),
        maxIterations: 1_000_000
    )

    let core = WorkloadSpec(kind: .core)
    let coreIntegrated = WorkloadSpec(kind: .core, integratedFlush: true)
    let disk = WorkloadSpec(kind: .disk)

    // Full path: decodeFrame + decodeRequest + engine.handle + encodeReply into a reused buffer.
    Benchmark("Serve core log") { benchmark, state in
        blackHole(serveRequests(benchmark.scaledIterations.count, state))
    } setup: {
        ServeState(core)
    }

    Benchmark("Serve core log integrated_flush") { benchmark, state in
        blackHole(serveRequests(benchmark.scaledIterations.count, state))
    } setup: {
        ServeState(coreIntegrated)
    }

    // Disk log: FLUSH returns .writeDevice (blocks to write), completed with completeWrite(.success).
    // Building the write list allocates by design; counted separately from the core log.
    Benchmark("Serve disk log") { benchmark, state in
        blackHole(serveRequests(benchmark.scaledIterations.count, state))
    } setup: {
        ServeState(disk)
    }

    // Stages of the core-log path, each alone.
    Benchmark("Stage decode") { benchmark, state in
        blackHole(decodeRequests(benchmark.scaledIterations.count, state))
    } setup: {
        DecodeState(core)
    }

    Benchmark("Stage handle") { benchmark, state in
        blackHole(handleRequests(benchmark.scaledIterations.count, state))
    } setup: {
        HandleState(core)
    }

    Benchmark("Stage encode") { benchmark, state in
        blackHole(encodeReplies(benchmark.scaledIterations.count, state))
    } setup: {
        EncodeState(core)
    }
}

