import ArgumentParser
import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

// MARK: - requests

/// Plays the kernel against a daemon's `--kernel-socket` and times ordered requests on clustered logs.
struct KernelRequests: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requests",
        abstract: "Time ordered requests (MARK/CLEAR) on clustered logs through a daemon's test socket.",
        discussion: """
        Connects to SOCKET as the kernel, creates and resumes --logs clustered-core logs (uuids \
        PREFIX-0, PREFIX-1, ...), then sends --count measured requests (after --warmup), alternating \
        MARK and CLEAR of one region per log. Each log keeps one request outstanding, as dm-raid1 \
        does: with --logs 1 every request is one ordered round trip; with more logs they run \
        concurrently. Prints {"count","p50_us","p99_us","mean_us","throughput_per_s"} as one JSON line.
        """
    )

    @Option(help: "The daemon's --kernel-socket path.") var socket: String
    @Option(help: "Clustered logs kept busy at once.") var logs = 1
    @Option(help: "Measured requests (over all logs).") var count = 2000
    @Option(help: "Unmeasured requests first.") var warmup = 200
    @Option(help: "uuid prefix of the logs (the same on every node: one group per log).") var prefix = "LVM-bench"
    @Option(help: "Regions per log.") var regions = 1024
    @Option(help: "luid of the first log (the others follow).") var luidBase: UInt64 = 1
    @Option(help: "Log type: clustered-core, or core to time the transport alone (no cluster).") var logType = "clustered-core"
    @Option(help: "Seconds to wait for any one reply.") var timeout = 20.0
    @Flag(help: "Only create and resume the logs, then stay connected for --hold seconds (other nodes' members).") var setupOnly = false
    @Option(help: "With --setup-only: seconds to stay.") var hold = 60.0

    func run() throws {
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0)
        guard fd >= 0 else { throw BenchFailure("socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(socket.utf8) + [0]) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else { throw BenchFailure("connect \(socket): errno \(errno)") }
        var client = KernelClient(fd: fd, timeoutMilliseconds: Int32(timeout * 1000))
        let uuids = (0 ..< logs).map { "\(prefix)-\($0)" }
        let length = UInt64(regions) * 1024
        for (index, uuid) in uuids.enumerated() {
            let luid = luidBase + UInt64(index)
            try client.expectOK(.constructor, .constructor(ConstructorString(text: "\(length) \(logType) 1024 nosync", isNULTerminated: false)), luid: luid, uuid: uuid)
            try client.expectOK(.resume, .none, luid: luid, uuid: uuid)
        }
        if setupOnly {
            Output.line(#"{"event":"ready","logs":\#(logs)}"#)
            let deadline = Clock.now() + Clock.nanoseconds(hold)
            while Clock.now() < deadline { usleep(100_000) }
            return
        }
        var samples: [UInt64] = []
        samples.reserveCapacity(count)
        var sent = 0
        var done = 0
        let total = warmup + count
        // One outstanding request per log, like dm-raid1's single worker per mirror.
        var outstanding: [UInt32: (log: Int, start: UInt64)] = [:]
        var step = [Int](repeating: 0, count: logs)
        var measuredStart: UInt64 = 0
        func issue(_ log: Int) throws {
            let region = UInt64(log % regions)
            let type: RequestType = step[log] % 2 == 0 ? .markRegion : .clearRegion
            step[log] += 1
            let seq = try client.send(type, .regions(RegionList([region])), luid: luidBase + UInt64(log), uuid: uuids[log])
            outstanding[seq] = (log, Clock.now())
            sent += 1
        }
        for log in 0 ..< logs where sent < total { try issue(log) }
        while done < total {
            let (seq, error) = try client.receive()
            guard let entry = outstanding.removeValue(forKey: seq) else { continue }
            guard error == 0 else { throw BenchFailure("request seq \(seq) failed with \(error)") }
            done += 1
            if done == warmup { measuredStart = Clock.now() }
            if done > warmup { samples.append(Clock.now() - entry.start) }
            if sent < total { try issue(entry.log) }
        }
        let elapsed = Clock.seconds(since: measuredStart)
        samples.sort()
        let mean = Double(samples.reduce(0, +)) / Double(samples.count) / 1000
        Output.line(#"{"count":\#(samples.count),"logs":\#(logs),"p50_us":\#(format(percentile(samples, 0.5))),"p99_us":\#(format(percentile(samples, 0.99))),"mean_us":\#(format(mean)),"throughput_per_s":\#(format(Double(samples.count) / elapsed))}"#)
    }
}

/// The kernel side of the test socket: encodes requests, decodes replies.
struct KernelClient {
    let fd: Int32
    let timeoutMilliseconds: Int32
    var seq: UInt32 = 0
    var buffer: [UInt8] = []
    var receiveBuffer = [UInt8](repeating: 0, count: 1 << 16)

    mutating func send(_ type: RequestType, _ payload: RequestPayload, luid: UInt64, uuid: String) throws -> UInt32 {
        seq &+= 1
        let header = RequestHeader(luid: luid, uuidBytes: Array(uuid.utf8)[...], version: 3, seq: seq, rawRequestType: type.rawValue)
        WireEncoder.encodeRequest(KernelRequest(header: header, type: type, payload: payload), into: &buffer)
        let n = buffer.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard n == buffer.count else { throw BenchFailure("send: errno \(errno)") }
        return seq
    }

    /// The next reply: its seq and error.
    mutating func receive() throws -> (UInt32, Int32) {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMilliseconds) == 1 else { throw BenchFailure("no reply within \(timeoutMilliseconds) ms") }
        let n = receiveBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n >= 196 else { throw BenchFailure("short reply (\(n) bytes)") }
        // nlmsghdr (16) + cn_msg (20) + dm_ulog_request: luid 8, uuid 129+3, version 4, error 4, seq 4.
        let base = 36 + 8 + 132
        let error = receiveBuffer[base + 4 ..< base + 8].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        let seq = receiveBuffer[base + 8 ..< base + 12].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        return (seq, error)
    }

    mutating func expectOK(_ type: RequestType, _ payload: RequestPayload, luid: UInt64, uuid: String) throws {
        let sent = try send(type, payload, luid: luid, uuid: uuid)
        while true {
            let (seq, error) = try receive()
            guard seq == sent else { continue }
            guard error == 0 else { throw BenchFailure("\(type) for \(uuid) failed with \(error)") }
            return
        }
    }
}
