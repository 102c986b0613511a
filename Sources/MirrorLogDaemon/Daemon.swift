import FoundationEssentials
import Logging
import MirrorLogAdapters
import MirrorLogCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's shell: one thread, one poll loop over the kernel transport, the signalfd, the
/// device-mapper report pipe and corosync. Every input goes to the pure ``MirrorLogService``; the
/// shell carries out the directives it returns, with one device table and one reply path.
public final class Daemon {
    private let configuration: DaemonConfiguration
    private let logger: Logger
    private let transport: KernelTransport
    private let signals: SignalSource
    private let deviceMapper: DeviceMapperControl?
    private var service = MirrorLogService()
    /// Open log devices, by the instance (luid) that opened them.
    private var devices: [UInt64: BlockDevice] = [:]
    private var corosync: CorosyncConnection?
    /// The DLM for the fencing barrier (from the first clustered constructor on).
    private var dlm: DLMConnection?
    /// The operator's control socket (`mirrorlogctl`); nil if it could not be created.
    private var control: ControlSocket?
    private let statistics = RequestStatistics()
    private var receiveBuffer = [UInt8](repeating: 0, count: 1 << 16)
    private var replyBuffer: [UInt8] = []
    private var lastTerminationRequest: Int?
    /// When the service wants its next tick at the latest (monotonic nanoseconds).
    private var wakeAt: UInt64 = 0
    private var running = true

    /// Why the daemon could not start.
    public enum StartupError: Error, CustomStringConvertible {
        /// The kernel connection (netlink connector, or the test socket) could not be opened.
        case transport(Errno)
        /// The signalfd could not be set up.
        case signals(Errno)

        public var description: String {
            switch self {
            case let .transport(e): "cannot open the kernel connection: \(e) (is this root, and is the kernel's connector available?)"
            case let .signals(e): "cannot set up signal handling: \(e)"
            }
        }
    }

    /// Opens the kernel connection (netlink connector by default) and the signalfd.
    public init(configuration: DaemonConfiguration, logger: Logger, transport: KernelTransport? = nil) throws(StartupError) {
        self.configuration = configuration
        self.logger = logger
        do throws(Errno) {
            if let transport {
                self.transport = transport
            } else if let path = configuration.kernelSocketPath {
                self.transport = try UnixSocketKernelTransport(path: path)
            } else {
                self.transport = try NetlinkConnectorSocket()
            }
        } catch {
            throw .transport(error)
        }
        do throws(Errno) {
            self.signals = try SignalSource()
        } catch {
            throw .signals(error)
        }
        deviceMapper = try? DeviceMapperControl()
        replyBuffer.reserveCapacity(1 << 12)
        service.operationsPerMessage = configuration.clusterOperationsPerMessage
        service.fencingMode = configuration.fencing
        service.bootID = BootID.current()
        let controlPath = configuration.controlSocketPath ?? configuration.runtimeDirectory + "/ctl.sock"
        do throws(Errno) {
            if mkdir(configuration.runtimeDirectory, 0o700) != 0, errno != EEXIST { throw Errno(rawValue: errno) }
            control = try ControlSocket(path: controlPath)
        } catch {
            logger.warning("no control socket at \(controlPath): \(error); mirrorlogctl cannot reach this daemon (SIGUSR1 still dumps the state)")
        }
    }

    /// Serves until told to stop. Returns the process exit status.
    public func run() -> Int32 {
        let source = configuration.kernelSocketPath.map { "the test socket \($0)" } ?? "the kernel's netlink connector"
        logger.info("mirrorlogd \(MirrorLogVersion.string) serving device-mapper userspace logs (log types: core, disk, clustered-core, clustered-disk) from \(source)")
        if configuration.fencing == .unfenced {
            logger.warning("running WITHOUT fencing (--no-fencing): a failed node's regions are recovered once corosync's quorum no longer lists it, although it may still be writing them; use only where no node can outlive its removal (tests, a single node)")
        }
        while running {
            // The transport's fd can change (the test transport polls its listener until a client connects).
            let clusterSources = corosync?.pollSources ?? []
            let controlFDs = control?.fileDescriptors ?? []
            let clusterBase = 4 + controlFDs.count
            var poller = Poller([transport.fileDescriptor, signals.fileDescriptor, deviceMapper?.fileDescriptor, dlm?.fileDescriptor]
                + controlFDs + clusterSources.map(\.fd))
            let now = monotonicNanoseconds()
            let timeout = wakeAt > now ? Int32(min(1000, (wakeAt - now + 999_999) / 1_000_000)) : 0
            let ready = poller.wait(timeoutMilliseconds: timeout)
            if ready.contains(1) { handleSignals() }
            for index in ready where index >= clusterBase { readCorosync(clusterSources[index - clusterBase].source) }
            if ready.contains(0) { drainKernel() }
            if ready.contains(where: { $0 >= 4 && $0 < clusterBase }) { serveControl() }
            if ready.contains(2) { readDeviceMapperReports() }
            if ready.contains(3) { readDLM() }
            tick()
        }
        corosync?.close()
        dlm?.close()
        return 0
    }

    // MARK: Inputs

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
                statistics.dropped += 1
                logger.warning("dropped a message from netlink port \(datagram.senderPortID): only the kernel may send requests")
                continue
            }
            let frame: ULogFrame
            do {
                frame = try WireDecoder.decodeFrame(receiveBuffer[0 ..< datagram.byteCount])
            } catch {
                statistics.dropped += 1
                logger.warning("dropped a malformed kernel message (\(datagram.byteCount) bytes): \(error)")
                continue
            }
            let request: KernelRequest
            do {
                request = try WireDecoder.decodeRequest(frame)
            } catch {
                statistics.invalid += 1
                execute(service.invalidRequest(frame.header, error))
                continue
            }
            statistics.count(request.type)
            execute(service.handle(request, now: monotonicNanoseconds()))
        }
    }

    private func readCorosync(_ source: CorosyncConnection.Source) {
        guard let connection = corosync else { return }
        let events: [CorosyncConnection.Event]
        do {
            events = try connection.dispatch(source)
        } catch {
            connectionLost(error)
            return
        }
        for event in events {
            let now = monotonicNanoseconds()
            switch event {
            case let .quorum(view):
                execute(service.quorumChanged(view, now: now))
            case let .delivered(from, message):
                execute(service.delivered(from: from, bytes: message[...], now: now))
            case let .membershipChanged(change):
                logger.debug("ordering group: members \(change.members) joined \(change.joined) left \(change.left.map { "\($0.member) (\($0.reason))" })")
                execute(service.membershipChanged(change, now: now))
            }
        }
    }

    /// Answers the operator's requests (after the kernel's: they never wait behind a client).
    private func serveControl() {
        guard let control else { return }
        for request in control.service() {
            switch ControlProtocol.parseRequest(request.bytes) {
            case let .failure(error):
                control.answer(request.client, with: ControlProtocol.error("\(error)"))
            case .success(.status):
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                do {
                    control.answer(request.client, with: ControlProtocol.ok(Array(try encoder.encode(service.statusReport()))))
                } catch {
                    control.answer(request.client, with: ControlProtocol.error("cannot encode the status: \(error)"))
                }
            }
        }
    }

    private func readDLM() {
        for event in dlm?.readable() ?? [] { execute(service.dlm(event, now: monotonicNanoseconds())) }
    }

    /// End of a pass: flow-controlled messages first, then the service's batching and timers.
    private func tick() {
        if let connection = corosync {
            do {
                try connection.retryBacklog()
            } catch {
                connectionLost(error)
            }
        }
        execute(service.tick(now: monotonicNanoseconds(), backlog: corosync?.backlogCount ?? 0))
    }

    private func connectionLost(_ error: CorosyncError) {
        corosync?.close()
        corosync = nil
        execute(service.corosyncLost("\(error)", now: monotonicNanoseconds()))
    }

    // MARK: Directives

    /// Carries out directives in order; device results and corosync outcomes go back into the
    /// service at once, and what it returns runs next.
    private func execute(_ directives: [Directive]) {
        var work = directives
        var index = 0
        while index < work.count {
            let directive = work[index]
            index += 1
            switch directive {
            case let .reply(header, reply):
                sendReply(header, reply)
            case let .openDevice(luid, spec):
                do {
                    let device = try BlockDevice(opening: spec, privateNodeDirectory: configuration.runtimeDirectory)
                    devices[luid] = device
                    work += service.completeOpen(luid: luid, .success(device.attachment), now: monotonicNanoseconds())
                } catch {
                    work += service.completeOpen(luid: luid, .failure(error), now: monotonicNanoseconds())
                }
            case let .closeDevice(luid):
                devices.removeValue(forKey: luid)
            case let .readDevice(io, byteCount):
                let result = devices[io.luid]?.read(byteCount: byteCount) ?? .failure(DeviceIOError(errno: 19, operation: "read: log device not open"))
                work += service.completeRead(io, result, now: monotonicNanoseconds())
            case let .writeDevice(io, writes):
                statistics.diskWrites += writes.count
                let result = devices[io.luid]?.write(writes) ?? .failure(DeviceIOError(errno: 19, operation: "write: log device not open"))
                work += service.completeWrite(io, result, now: monotonicNanoseconds())
            case let .notice(notice):
                logger.report(notice)
            case let .restartRecovery(uuid):
                restartRecovery(of: uuid)
            case .connectCorosync:
                work += connectCorosync()
            case .joinOrderingGroup:
                guard let connection = corosync else { continue }
                do {
                    let joined = try connection.join()
                    work += service.joinAttempted(deferred: !joined, now: monotonicNanoseconds())
                } catch {
                    if error.isConnectionLost {
                        connectionLost(error)
                    } else {
                        logger.error("cannot join the CPG ordering group: \(error); clustered requests wait until the daemon reconnects")
                    }
                }
            case .leaveOrderingGroup:
                if corosync?.leave() == false {
                    logger.info("cpg_leave not accepted now; closed the handle instead")
                }
            case let .multicast(bytes):
                do {
                    try corosync?.multicast(bytes)
                } catch {
                    if error.isConnectionLost { connectionLost(error) } else { logger.error("multicast to the ordering group failed: \(error)") }
                }
            case let .wake(at):
                wakeAt = at
            case let .dlm(request):
                if dlm == nil, let me = service.cluster?.me { dlm = DLMConnection(nodeID: me.nodeID, logger: logger) }
                for event in dlm?.execute(request) ?? [] { work += service.dlm(event, now: monotonicNanoseconds()) }
            }
        }
    }

    private func sendReply(_ header: RequestHeader, _ reply: Reply) {
        if configuration.debug {
            logger.debug("\(RequestType(rawValue: header.rawRequestType & 0xFF).map { "\($0)" } ?? "?") seq=\(header.seq) -> error=\(reply.error) \(reply.payload)", metadata: ["log": "\(shortUUID(header.uuid))"])
        }
        if reply.error != 0 { statistics.failed += 1 }
        WireEncoder.encodeReply(to: header, reply, netlinkPortID: transport.portID, into: &replyBuffer)
        do {
            try transport.send(replyBuffer)
        } catch {
            logger.error("sending a reply to the kernel failed: \(error); the kernel will re-send after its timeout")
        }
    }

    /// Connects to corosync without blocking the loop and tells the service how it went.
    private func connectCorosync() -> [Directive] {
        let now = monotonicNanoseconds()
        corosync?.close()
        corosync = nil
        do {
            let connection = try CorosyncConnection()
            corosync = connection
            return service.corosyncConnected(me: connection.me, quorum: connection.quorumView, now: now)
        } catch {
            return service.corosyncUnavailable("\(error)", now: now)
        }
    }

    /// Restarts the kernel's recovery of a log that reconnected with work to resync: a suspend and
    /// resume of its dm device, on a background thread (the device's log requests come back here).
    private func restartRecovery(of uuid: String) {
        guard let deviceMapper else {
            logger.warning("cannot restart recovery (no device-mapper control); run 'dmsetup suspend' and 'dmsetup resume' on the mirror", metadata: ["log": "\(shortUUID(uuid))"])
            return
        }
        do {
            try deviceMapper.restartRecovery(ofLog: uuid)
        } catch {
            logger.warning("cannot start the recovery restart: \(error); run 'dmsetup suspend' and 'dmsetup resume' on the mirror", metadata: ["log": "\(shortUUID(uuid))"])
        }
    }

    private func readDeviceMapperReports() {
        for outcome in deviceMapper?.takeOutcomes() ?? [] {
            switch outcome {
            case let .restarted(uuid, device):
                logger.info("recovery restarted: suspended and resumed dm device \(device)", metadata: ["log": "\(shortUUID(uuid))"])
            case let .failed(uuid, error):
                logger.warning("recovery restart failed: \(error); run 'dmsetup suspend' and 'dmsetup resume' on the mirror", metadata: ["log": "\(shortUUID(uuid))"])
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
        let active = service.activeLogCount
        if active == 0 {
            logger.info("\(name): no active logs; exiting")
            running = false
            return
        }
        let now = monotonicSeconds()
        if let last = lastTerminationRequest, now - last <= configuration.forcedExitWindowSeconds {
            persistDiskLogs()
            logger.warning("\(name) again: exiting with \(active) active log(s); disk logs were persisted. The kernel blocks their I/O and retries every 2 s until mirrorlogd runs again; core logs will then resync fully.")
            running = false
            return
        }
        lastTerminationRequest = now
        logger.warning("\(name): refusing to exit while \(active) log(s) are active (remove the mirrors first, or send the signal again within \(configuration.forcedExitWindowSeconds) s to force)")
    }

    /// Writes every dirty bitmap block of every local disk log (before a forced exit).
    private func persistDiskLogs() {
        for (io, writes) in service.pendingDiskWrites() {
            guard let device = devices[io.luid] else { continue }
            if case let .failure(error) = device.write(writes) {
                logger.error("could not persist log state before exit: \(error)", metadata: ["log": "\(io.luid)"])
            }
        }
    }

    private func dumpState() {
        let logs = service.engine.logs.values.sorted { $0.uuid < $1.uuid }
        logger.info("state dump: \(service.activeLogCount) log(s), \(logs.count) local; \(statistics.summary)")
        for log in logs {
            logger.info("\(log.uuid) \(log.summary)", metadata: ["log": "\(shortUUID(log.uuid))"])
        }
        guard let node = service.cluster else {
            logger.info("cluster: not connected to corosync")
            return
        }
        logger.info("cluster: me=\(node.me) corosync=\(service.corosync) quorate=\(node.quorum.quorate) quorum_nodes=\(node.quorum.nodes.sorted()) logs=\(node.logs.count) multicasts=\(corosync?.multicasts ?? 0)")
        for line in node.dumpLines() { logger.info("\(line)") }
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
