import Logging
import MirrorLogAdapters
import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

/// The daemon: one thread, one poll loop over the kernel transport and the signalfd.
public final class Daemon {
    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let transport: KernelTransport
    private let signals: SignalSource
    private let processor: RequestProcessor
    private let deviceMapper: DeviceMapperControl?
    private var receiveBuffer = [UInt8](repeating: 0, count: 1 << 16)
    private var replyBuffer: [UInt8] = []
    private var lastTerminationRequest: Int?
    private var cluster: ClusterShell!
    private var clusterReplyBuffer: [UInt8] = []
    private var running = true

    /// Why the daemon could not start.
    public enum StartupError: Error, CustomStringConvertible {
        case transport(String)
        case signals(String)

        public var description: String {
            switch self {
            case let .transport(m): "cannot open the kernel connection: \(m)"
            case let .signals(m): "cannot set up signal handling: \(m)"
            }
        }
    }

    /// Opens the kernel connection (netlink connector by default) and the signalfd.
    public init(configuration: DaemonConfiguration, logger: Logger, transport: KernelTransport? = nil) throws(StartupError) {
        self.configuration = configuration
        self.logger = logger
        do {
            if let transport {
                self.transport = transport
            } else if let path = configuration.kernelSocketPath {
                self.transport = try UnixSocketKernelTransport(path: path)
            } else {
                self.transport = try NetlinkConnectorSocket()
            }
        } catch {
            throw .transport("\(error) (is this root, and is the kernel's connector available?)")
        }
        do {
            self.signals = try SignalSource()
        } catch {
            throw .signals("\(error)")
        }
        deviceMapper = try? DeviceMapperControl()
        replyBuffer.reserveCapacity(1 << 12)
        processor = RequestProcessor(runtimeDirectory: configuration.runtimeDirectory, logger: logger, debug: configuration.debug)
        cluster = ClusterShell(runtimeDirectory: configuration.runtimeDirectory, logger: logger) { [unowned self] header, reply in
            self.sendClusterReply(header, reply)
        }
        cluster.operationsPerMessage = configuration.clusterOperationsPerMessage
        processor.cluster = cluster
    }

    /// A clustered log's answer, sent when its operation came back in the agreed order.
    private func sendClusterReply(_ header: RequestHeader, _ reply: Reply) {
        if configuration.debug {
            logger.debug("\(RequestType(rawValue: header.rawRequestType & 0xFF).map { "\($0)" } ?? "?") seq=\(header.seq) -> error=\(reply.error) \(reply.payload)", metadata: ["log": "\(shortUUID(header.uuid))"])
        }
        if reply.error != 0 { processor.statistics.failed += 1 }
        WireEncoder.encodeReply(to: header, reply, netlinkPortID: transport.portID, into: &clusterReplyBuffer)
        do {
            try transport.send(clusterReplyBuffer)
        } catch {
            logger.error("sending a reply to the kernel failed: \(error); the kernel will re-send after its timeout")
        }
    }

    /// Serves until told to stop. Returns the process exit status.
    public func run() -> Int32 {
        let source = configuration.kernelSocketPath.map { "the test socket \($0)" } ?? "the kernel's netlink connector"
        logger.info("mirrorlogd \(MirrorLogVersion.string) serving device-mapper userspace logs (log types: core, disk, clustered-core, clustered-disk) from \(source)")
        while running {
            // The transport's fd can change (the test transport polls its listener until a client connects).
            let clusterSources = cluster.pollSources
            var poller = Poller([transport.fileDescriptor, signals.fileDescriptor, deviceMapper?.fileDescriptor ?? -1] + clusterSources.map(\.fd))
            let ready = poller.wait(timeoutMilliseconds: cluster.wantsPromptTick ? 5 : 1000)
            if ready.contains(1) { handleSignals() }
            for index in ready where index >= 3 { cluster.handleReadable(clusterSources[index - 3].source) }
            if ready.contains(0) { drainKernel() }
            if ready.contains(2) { readDeviceMapperReports() }
            cluster.tick()
            if !cluster.recoveryRestarts.isEmpty {
                processor.recoveryRestarts += cluster.recoveryRestarts
                cluster.recoveryRestarts.removeAll()
                startRecoveryRestarts()
            }
        }
        cluster.close()
        return 0
    }

    private func drainKernel() {
        // Bound one pass so signals are seen under a flood.
        for _ in 0 ..< 256 {
            let datagram: ReceivedDatagram?
            do {
                datagram = try transport.receive(into: &receiveBuffer)
            } catch {
                // ENOBUFS: the socket overflowed and the kernel dropped requests; it re-sends them after 15 s.
                logger.warning("receiving from the kernel failed: \(error)")
                return
            }
            guard let datagram else { return }
            guard datagram.fromKernel else {
                processor.statistics.dropped += 1
                logger.warning("dropped a message from netlink port \(datagram.senderPortID): only the kernel may send requests")
                continue
            }
            if processor.process(receiveBuffer[0 ..< datagram.byteCount], reply: &replyBuffer, portID: transport.portID) {
                do {
                    try transport.send(replyBuffer)
                } catch {
                    logger.error("sending a reply to the kernel failed: \(error); the kernel will re-send after its timeout")
                }
            }
            startRecoveryRestarts()
        }
    }

    /// Restarts the kernel's recovery of logs that reconnected with work to resync: a suspend and
    /// resume of their dm device, on a background thread (the device's log requests come back here).
    private func startRecoveryRestarts() {
        guard !processor.recoveryRestarts.isEmpty else { return }
        let uuids = processor.recoveryRestarts
        processor.recoveryRestarts.removeAll()
        for uuid in uuids {
            guard let deviceMapper else {
                logger.warning("cannot restart recovery (no device-mapper control); run 'dmsetup suspend' and 'dmsetup resume' on the mirror", metadata: ["log": "\(shortUUID(uuid))"])
                continue
            }
            do {
                try deviceMapper.restartRecovery(ofLog: uuid)
            } catch {
                logger.warning("cannot start the recovery restart: \(error); run 'dmsetup suspend' and 'dmsetup resume' on the mirror", metadata: ["log": "\(shortUUID(uuid))"])
            }
        }
    }

    private func readDeviceMapperReports() {
        for line in deviceMapper?.readReports() ?? [] {
            let words = line.split(separator: " ", maxSplits: 2).map(String.init)
            guard words.count >= 2 else { continue }
            let uuid = words[1].hasSuffix(":") ? String(words[1].dropLast()) : words[1]
            if words[0] == "ok" {
                logger.info("recovery restarted: suspended and resumed dm device \(words.count > 2 ? words[2] : "?")", metadata: ["log": "\(shortUUID(uuid))"])
            } else {
                logger.warning("recovery restart failed: \(words.count > 2 ? words[2] : line); run 'dmsetup suspend' and 'dmsetup resume' on the mirror", metadata: ["log": "\(shortUUID(uuid))"])
            }
        }
    }

    private func handleSignals() {
        while let signal = signals.next() {
            switch signal {
            case .dumpState:
                dumpState()
            case .hangup:
                logger.info("SIGHUP: nothing to reload; state follows")
                dumpState()
            case .terminate, .interrupt:
                requestTermination(signal)
            }
        }
    }

    /// SIGTERM/SIGINT: exit at once if no log is active. With active logs the first signal is refused
    /// (as cmirrord does), because the kernel would block I/O until a daemon comes back; a second one
    /// within the window persists every disk log and exits.
    private func requestTermination(_ signal: SignalSource.Signal) {
        let name = signal == .terminate ? "SIGTERM" : "SIGINT"
        let active = processor.engine.logs.count + cluster.instanceCount
        if active == 0 {
            logger.info("\(name): no active logs; exiting")
            running = false
            return
        }
        let now = monotonicSeconds()
        if let last = lastTerminationRequest, now - last <= configuration.forcedExitWindowSeconds {
            processor.persistAll()
            logger.warning("\(name) again: exiting with \(active) active log(s); disk logs were persisted. The kernel blocks their I/O and retries every 2 s until mirrorlogd runs again; core logs will then resync fully.")
            running = false
            return
        }
        lastTerminationRequest = now
        logger.warning("\(name): refusing to exit while \(active) log(s) are active (remove the mirrors first, or send the signal again within \(configuration.forcedExitWindowSeconds) s to force)")
    }

    private func dumpState() {
        let logs = processor.engine.logs.values.sorted { $0.uuid < $1.uuid }
        logger.info("state dump: \(logs.count) log(s); \(processor.statistics.summary)")
        for log in logs {
            logger.info("\(log.uuid) \(log.summary)", metadata: ["log": "\(shortUUID(log.uuid))"])
        }
        for line in cluster.dumpLines() { logger.info("\(line)") }
    }
}

/// Nanoseconds on the monotonic clock.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Int {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int(ts.tv_sec)
}

/// The daemon's version.
public enum MirrorLogVersion {
    public static let string = "0.1.0"
}
