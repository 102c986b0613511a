import ArgumentParser
import MirrorLogAdapters
import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

/// Raw corosync CPG round trips and a passive group member, for the cluster benchmark.
/// Every wait is bounded; output is one JSON object per line on stdout.
struct CPGBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirrorlog-cpgbench",
        abstract: "Raw corosync CPG round-trip benchmark and passive group member.",
        subcommands: [RoundTrip.self, Member.self, KernelRequests.self]
    )
}

/// Why a run stopped early.
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - rtt

struct RoundTrip: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rtt",
        abstract: "Multicast messages and time the delivery of each back to us (agreed order).",
        discussion: """
        Joins GROUP, waits until it has --wait-members members, sends --warmup messages that are not \
        measured, then --count measured ones, keeping --in-flight outstanding (1: one round trip at a time). \
        Prints {"count","p50_us","p99_us","mean_us","throughput_per_s",...} as one JSON line.
        """
    )

    @Option(help: "CPG group name (at most 128 bytes).") var group: String
    @Option(help: "Measured messages.") var count = 1000
    @Option(help: "Message size in bytes (at least 8: a sequence number leads).") var size = 64
    @Option(help: "Unmeasured messages sent first.") var warmup = 100
    @Option(help: "Members (this one included) to wait for before sending.") var waitMembers = 1
    @Option(help: "Seconds to wait for the members, and at most between two deliveries.") var timeout = 10.0
    @Option(help: "Messages kept outstanding.") var inFlight = 1
    @Flag(help: "Print membership changes on stderr.") var verbose = false

    func validate() throws {
        guard size >= 8 else { throw ValidationError("--size must be at least 8") }
        guard count >= 1, warmup >= 0, inFlight >= 1, waitMembers >= 1 else {
            throw ValidationError("--count, --in-flight and --wait-members must be positive, --warmup not negative")
        }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() throws {
        let cpg = try CPGGroup(name: group)
        defer { cpg.close() }
        try cpg.join()
        let members = try waitForMembers(cpg)

        let total = warmup + count
        var sendTimes = [UInt64](repeating: 0, count: total)
        var latencies: [UInt64] = []
        latencies.reserveCapacity(count)
        var message = [UInt8](repeating: 0xA5, count: size)
        var nextToSend = 0, delivered = 0, flowControlled = 0
        var measureStart: UInt64 = 0, measureEnd: UInt64 = 0
        var progressDeadline = Clock.now() + Clock.nanoseconds(timeout)
        var poller = Poller([cpg.fileDescriptor])

        while delivered < total {
            var blocked = false
            while nextToSend < total && nextToSend - delivered < inFlight {
                withUnsafeBytes(of: UInt64(nextToSend).littleEndian) { message.replaceSubrange(0..<8, with: $0) }
                let now = Clock.now()
                guard try cpg.multicast(message) == .sent else {
                    flowControlled += 1
                    blocked = true
                    break
                }
                sendTimes[nextToSend] = now
                if nextToSend == warmup { measureStart = now }
                nextToSend += 1
            }
            let now = Clock.now()
            guard now < progressDeadline else {
                throw BenchFailure("no delivery of our own message for \(timeout) s (\(delivered) of \(total) delivered)")
            }
            let outstanding = nextToSend - delivered
            let waitMs = (outstanding == 0 || blocked) ? 1 : Clock.milliseconds(until: progressDeadline)
            if poller.wait(timeoutMilliseconds: waitMs).isEmpty { continue }
            for event in try cpg.dispatch() {
                switch event {
                case let .delivered(from, bytes) where from == cpg.localMember && bytes.count >= 8:
                    let arrived = Clock.now()
                    let seq = Int(bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
                    guard seq == delivered else {
                        throw BenchFailure("own message \(seq) delivered when \(delivered) was expected")
                    }
                    if seq >= warmup { latencies.append(arrived - sendTimes[seq]) }
                    delivered += 1
                    measureEnd = arrived
                    progressDeadline = arrived + Clock.nanoseconds(timeout)
                case .delivered:
                    break
                case let .membershipChanged(change):
                    if verbose { Output.error(membershipJSON(change)) }
                }
            }
        }
        try? cpg.leave()

        latencies.sort()
        let mean = Double(latencies.reduce(0, +)) / Double(latencies.count) / 1000
        let seconds = Double(measureEnd - measureStart) / 1e9
        let throughput = seconds > 0 ? Double(count) / seconds : 0
        Output.line("""
        {"count":\(count),"p50_us":\(format(percentile(latencies, 0.50))),"p99_us":\(format(percentile(latencies, 0.99))),\
        "mean_us":\(format(mean)),"throughput_per_s":\(format(throughput)),"size":\(size),"in_flight":\(inFlight),\
        "members":\(members),"min_us":\(format(Double(latencies.first!) / 1000)),"max_us":\(format(Double(latencies.last!) / 1000)),\
        "flow_controlled":\(flowControlled)}
        """)
    }

    /// Dispatches until a configuration change shows at least `waitMembers` members including us.
    private func waitForMembers(_ cpg: CPGGroup) throws -> Int {
        let deadline = Clock.now() + Clock.nanoseconds(timeout)
        var seen = 0
        while Clock.now() < deadline {
            var poller = Poller([cpg.fileDescriptor])
            if poller.wait(timeoutMilliseconds: Clock.milliseconds(until: deadline)).isEmpty { continue }
            for case let .membershipChanged(change) in try cpg.dispatch() {
                if verbose { Output.error(membershipJSON(change)) }
                guard change.members.contains(cpg.localMember) else { continue }
                seen = change.members.count
            }
            if seen >= waitMembers { return seen }
        }
        throw BenchFailure("group \(group) has \(seen) members after \(timeout) s, \(waitMembers) wanted")
    }
}

// MARK: - member

struct Member: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "member",
        abstract: "Join a group and stay in it, dispatching and ignoring messages, then leave.",
        discussion: """
        Prints one JSON line per membership change (and per quorum change with --quorum) with the wall \
        clock and the seconds since start. Leaves and exits 0 after --seconds or on SIGTERM/SIGINT; exits 3 \
        when corosync goes away (the error is printed as an "error" event).
        """
    )

    @Option(help: "CPG group name (at most 128 bytes).") var group: String
    @Option(help: "Seconds to stay a member.") var seconds = 60.0
    @Flag(help: "Also follow corosync's quorum and print its changes.") var quorum = false

    func run() throws {
        let signals = try SignalSource()
        let cpg = try CPGGroup(name: group)
        defer { cpg.close() }
        let monitor = quorum ? try QuorumMonitor() : nil
        defer { monitor?.close() }
        let start = Clock.now()
        if let monitor { Output.line(quorumJSON(monitor.isQuorate, start)) }
        try cpg.join()

        let deadline = start + Clock.nanoseconds(seconds)
        var delivered = 0
        var stopped = "time"
        var descriptors = [signals.fileDescriptor, cpg.fileDescriptor]
        if let monitor { descriptors.append(monitor.fileDescriptor) }
        var poller = Poller(descriptors)
        loop: while Clock.now() < deadline {
            for index in poller.wait(timeoutMilliseconds: min(Clock.milliseconds(until: deadline), 1000)) {
                switch index {
                case 0:
                    if let signal = signals.next(), signal == .terminate || signal == .interrupt {
                        stopped = "signal"
                        break loop
                    }
                case 1:
                    do {
                        for event in try cpg.dispatch() {
                            switch event {
                            case .delivered: delivered += 1
                            case let .membershipChanged(change): Output.line(membershipJSON(change, since: start))
                            }
                        }
                    } catch {
                        Output.line(errorJSON(error, start))
                        throw ExitCode(3)
                    }
                default:
                    guard let monitor else { continue }
                    let was = monitor.isQuorate
                    do {
                        let now = try monitor.dispatch()
                        if now != was { Output.line(quorumJSON(now, start)) }
                    } catch {
                        Output.line(errorJSON(error, start))
                        throw ExitCode(3)
                    }
                }
            }
        }
        do {
            try cpg.leave()
        } catch {
            Output.line(errorJSON(error, start))
        }
        Output.line(#"{"event":"exit","reason":"\#(stopped)","delivered":\#(delivered),"t":\#(milliseconds(Clock.seconds(since: start)))}"#)
    }
}

// MARK: - helpers

/// CLOCK_MONOTONIC in nanoseconds, and the wall clock for lining events up with other logs.
enum Clock {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func wall() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func nanoseconds(_ seconds: Double) -> UInt64 { UInt64(seconds * 1e9) }

    static func seconds(since start: UInt64) -> Double { Double(now() - start) / 1e9 }

    /// Milliseconds from now to `deadline`, rounded up, at least 0.
    static func milliseconds(until deadline: UInt64) -> Int32 {
        let now = now()
        guard deadline > now else { return 0 }
        return Int32(clamping: (deadline - now + 999_999) / 1_000_000)
    }
}

/// Whole lines straight to the fds (no stdio buffering to flush before an exit).
enum Output {
    static func line(_ text: String) { write(1, text + "\n") }
    static func error(_ text: String) { write(2, text + "\n") }

    private static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}

/// Nearest-rank percentile of sorted nanoseconds, in microseconds.
func percentile(_ sorted: [UInt64], _ p: Double) -> Double {
    let rank = max(1, Int((p * Double(sorted.count)).rounded(.up)))
    return Double(sorted[min(rank, sorted.count) - 1]) / 1000
}

func format(_ value: Double) -> String {
    let scaled = (value * 10).rounded() / 10
    return scaled == scaled.rounded() ? String(Int(scaled)) : String(scaled)
}

/// Seconds with millisecond precision.
func milliseconds(_ seconds: Double) -> String {
    let ms = Int((seconds * 1000).rounded())
    let fraction = String(ms % 1000)
    return "\(ms / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}

func membershipJSON(_ change: MembershipChange, since start: UInt64? = nil) -> String {
    let members = change.members.map { #""\#($0)""# }.joined(separator: ",")
    let joined = change.joined.map { #""\#($0)""# }.joined(separator: ",")
    let left = change.left.map { #"{"member":"\#($0.member)","reason":"\#($0.reason)"}"# }.joined(separator: ",")
    let time = start.map { #","t":\#(milliseconds(Clock.seconds(since: $0)))"# } ?? ""
    return #"{"event":"membership","wall":\#(String(Clock.wall()))\#(time),"members":[\#(members)],"joined":[\#(joined)],"left":[\#(left)]}"#
}

func quorumJSON(_ quorate: Bool, _ start: UInt64) -> String {
    #"{"event":"quorum","wall":\#(String(Clock.wall())),"t":\#(milliseconds(Clock.seconds(since: start))),"quorate":\#(quorate)}"#
}

func errorJSON(_ error: any Error, _ start: UInt64) -> String {
    let code = (error as? CorosyncError).map { #","code":\#($0.code)"# } ?? ""
    let text = String("\(error)".map { $0 == "\"" || $0 == "\\" ? "'" : $0 })
    return #"{"event":"error","wall":\#(String(Clock.wall())),"t":\#(milliseconds(Clock.seconds(since: start)))\#(code),"error":"\#(text)"}"#
}

CPGBench.main()
