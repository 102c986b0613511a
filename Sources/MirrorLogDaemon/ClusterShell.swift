import Logging
import MirrorLogAdapters
import MirrorLogCore

/// Wires the pure ``ClusterNode`` to corosync: one CPG handle per clustered log, the quorum
/// monitor, the clustered logs' devices, and the kernel replies that come back asynchronously.
/// It carries out the node's directives and decides nothing itself.
final class ClusterShell {
    /// The pure cluster state (nil until corosync was reached once: it gives us our node id).
    private(set) var node: ClusterNode?
    private var quorum: QuorumMonitor?
    private var handles: [String: CPGGroup] = [:]
    /// Messages refused by flow control, per group, in order; retried from the event loop.
    private var backlog: [String: [[UInt8]]] = [:]
    /// Groups whose `cpg_join` corosync answered with TRY_AGAIN; retried from the event loop, which
    /// never sleeps for it.
    private var pendingJoins: Set<String> = []
    private var devices: [UInt64: BlockDevice] = [:]
    private let runtimeDirectory: String
    private let logger: Logger
    private let sendReply: (RequestHeader, Reply) -> Void
    /// At most this many operations per CPG message (benchmarks); nil: unlimited.
    var operationsPerMessage: Int?
    private var lastConnectAttempt = -1_000
    private var connectionLostNoticeShown = false
    /// Logs whose kernel recovery must be restarted (suspend and resume of the dm device); the daemon
    /// takes them after each pass.
    var recoveryRestarts: [String] = []
    /// CPG multicasts sent (for dumps and the benchmark).
    private(set) var multicasts = 0
    /// Our multicasts not delivered back yet, and when the oldest of them went out.
    private var inFlight = 0
    private var inFlightSince: UInt64 = 0
    /// Self-clocked batching: while this many of our messages are on their way, requests collect
    /// for the next message. An idle node sends at once; a busy one sends fewer, larger messages.
    private let maxInFlight = 2

    init(runtimeDirectory: String, logger: Logger, sendReply: @escaping (RequestHeader, Reply) -> Void) {
        self.runtimeDirectory = runtimeDirectory
        self.logger = logger
        self.sendReply = sendReply
    }

    /// Descriptors to poll, each with what it is.
    enum Source {
        case quorum
        case group(String)
    }

    var pollSources: [(fd: Int32, source: Source)] {
        var list: [(Int32, Source)] = []
        if let quorum { list.append((quorum.fileDescriptor, .quorum)) }
        for (name, handle) in handles.sorted(by: { $0.key < $1.key }) { list.append((handle.fileDescriptor, .group(name))) }
        return list
    }

    /// Whether something waits for the event loop soon (flow-controlled messages).
    var wantsPromptTick: Bool {
        !pendingJoins.isEmpty || backlog.values.contains { !$0.isEmpty } || (inFlight >= maxInFlight && (node?.hasOutbound ?? false))
    }

    /// Number of clustered log instances served.
    var instanceCount: Int { node?.groups.values.reduce(0) { $0 + $1.instances.count } ?? 0 }

    /// Whether `request` belongs to the cluster layer.
    func claims(_ request: KernelRequest) -> Bool {
        if let node { return node.claims(request) }
        guard request.type == .constructor, case let .constructor(text) = request.payload else { return false }
        return ClusterNode.namesClusteredType(text.text)
    }

    // MARK: Inputs

    func handleKernel(_ request: KernelRequest) {
        if node == nil { connect(force: true) }
        guard node != nil else {
            let header = request.header
            let what = request.type == .constructor ? "constructor refused" : "\(request.type) refused"
            logger.error("\(what): clustered logs need corosync, and mirrorlogd cannot reach it (is corosync running?)", metadata: ["log": "\(shortUUID(header.uuid))"])
            sendReply(header, request.type == .destructor ? .ok : .failure(.invalidArgument))
            return
        }
        run(node!.handleKernel(request))
    }

    func handleReadable(_ source: Source) {
        guard node != nil else { return }
        switch source {
        case .quorum:
            guard let quorum else { return }
            do {
                try quorum.dispatch()
                run(node!.quorumChanged(QuorumView(quorate: quorum.isQuorate, nodes: quorum.nodes)))
            } catch {
                connectionLost(error)
            }
        case let .group(name):
            guard let handle = handles[name] else { return }
            let events: [CPGEvent]
            do {
                events = try handle.dispatch()
            } catch {
                connectionLost(error)
                return
            }
            for event in events {
                switch event {
                case let .delivered(from, message):
                    if from == node!.me, inFlight > 0 {
                        inFlight -= 1
                        inFlightSince = inFlight > 0 ? monotonicNanoseconds() : 0
                    }
                    run(node!.deliver(group: name, from: from, bytes: message[...]))
                case let .membershipChanged(change):
                    logger.debug("group \(name): members \(change.members) joined \(change.joined) left \(change.left.map { "\($0.member) (\($0.reason))" })")
                    run(node!.membershipChanged(group: name, change))
                }
            }
        }
    }

    /// End of an event-loop pass: multicast what the pass queued (requests that arrived together share
    /// one message), retry flow-controlled messages, and reconnect to corosync if it went away.
    func tick() {
        // Corosync is first reached at the first clustered constructor; after that, lost connections
        // are retried here every second.
        guard node != nil else { return }
        if !node!.connected { connect(force: false) }
        for group in pendingJoins.sorted() { join(group) }
        retryBacklog()
        // A message that never comes back (corosync drops multicasts outside the group) must not
        // stop the flow: after 50 ms the window opens again.
        if inFlight >= maxInFlight, monotonicNanoseconds() - inFlightSince > 50_000_000 { inFlight = 0 }
        guard inFlight < maxInFlight else { return }
        run(node!.flushOutbound())
    }

    /// Lines for the SIGUSR1 dump.
    func dumpLines() -> [String] {
        guard let node else { return ["cluster: not connected to corosync"] }
        var lines = ["cluster: me=\(node.me) connected=\(node.connected) quorate=\(node.quorum.quorate) quorum_nodes=\(node.quorum.nodes.sorted()) groups=\(node.groups.count) multicasts=\(multicasts)"]
        lines += node.dumpLines()
        return lines
    }

    /// Persists nothing: a clustered log's state lives on the other members and its log device is
    /// written by the writer at every flush.
    func close() {
        for handle in handles.values { handle.close() }
        handles.removeAll()
        quorum?.close()
    }

    // MARK: Directives

    private func run(_ directives: [ClusterDirective]) {
        var work = directives
        var index = 0
        while index < work.count {
            let directive = work[index]
            index += 1
            switch directive {
            case let .reply(header, reply):
                sendReply(header, reply)
            case let .join(group):
                join(group)
            case let .leave(group):
                if let handle = handles.removeValue(forKey: group) {
                    // One attempt: if corosync is busy, closing the handle is the leave (the others
                    // then see this member go down rather than leave, which costs a recovery cycle).
                    if (try? handle.tryLeave()) != true {
                        logger.info("cpg_leave '\(group)' not accepted now; closing the handle instead")
                    }
                    handle.close()
                }
                backlog.removeValue(forKey: group)
                pendingJoins.remove(group)
            case let .multicast(group, bytes):
                multicast(bytes, group: group)
            case let .openDevice(luid, spec):
                do {
                    let device = try BlockDevice(opening: spec, privateNodeDirectory: runtimeDirectory)
                    devices[luid] = device
                    work += node!.completeOpen(luid: luid, .success(device.attachment))
                } catch {
                    work += node!.completeOpen(luid: luid, .failure(error))
                }
            case let .closeDevice(luid):
                devices.removeValue(forKey: luid)
            case let .readDevice(luid, byteCount, ticket):
                let result = devices[luid]?.read(byteCount: byteCount) ?? .failure(DeviceIOError(errno: 19, operation: "read: log device not open"))
                work += node!.completeRead(ticket: ticket, result)
            case let .writeDevice(luid, writes, ticket):
                let result = devices[luid]?.write(writes) ?? .failure(DeviceIOError(errno: 19, operation: "write: log device not open"))
                work += node!.completeWrite(ticket: ticket, result)
            case let .notice(notice):
                logger.report(notice)
            case let .restartRecovery(uuid):
                recoveryRestarts.append(uuid)
            }
        }
    }

    private func join(_ group: String) {
        do throws(CorosyncError) {
            let handle: CPGGroup
            if let existing = handles[group] { handle = existing } else { handle = try CPGGroup(name: group, patience: .eventLoop) }
            handles[group] = handle
            if try handle.tryJoin() {
                if pendingJoins.remove(group) != nil { logger.info("joined CPG group '\(group)' after corosync asked to try again") }
            } else if pendingJoins.insert(group).inserted {
                logger.info("corosync is busy (TRY_AGAIN) joining CPG group '\(group)'; retrying from the event loop")
            }
        } catch {
            pendingJoins.remove(group)
            if error.isConnectionLost {
                connectionLost(error)
            } else {
                logger.error("cannot join CPG group '\(group)': \(error); its requests wait until the daemon reconnects")
            }
        }
    }

    private func multicast(_ bytes: [UInt8], group: String) {
        if let queued = backlog[group], !queued.isEmpty {
            backlog[group]!.append(bytes)
            return
        }
        guard let handle = handles[group] else { return }
        do {
            switch try handle.multicast(bytes) {
            case .sent:
                multicasts += 1
                if inFlight == 0 { inFlightSince = monotonicNanoseconds() }
                inFlight += 1
            case .flowControlled: backlog[group, default: []].append(bytes)
            }
        } catch {
            if error.isConnectionLost { connectionLost(error) } else { logger.error("multicast to '\(group)' failed: \(error)") }
        }
    }

    private func retryBacklog() {
        for group in backlog.keys.sorted() {
            guard let handle = handles[group] else { backlog.removeValue(forKey: group); continue }
            while let first = backlog[group]?.first {
                do {
                    guard try handle.multicast(first) == .sent else { break }
                    multicasts += 1
                    backlog[group]!.removeFirst()
                } catch {
                    if error.isConnectionLost { connectionLost(error) } else { logger.error("multicast to '\(group)' failed: \(error)") }
                    return
                }
            }
        }
    }

    // MARK: Connection

    /// Connects to corosync (quorum first, then a handle per group). Rate-limited unless forced.
    private func connect(force: Bool) {
        let now = monotonicSeconds()
        guard force || now - lastConnectAttempt >= 1 else { return }
        lastConnectAttempt = now
        do {
            let monitor = try QuorumMonitor(patience: .eventLoop)
            if node == nil {
                let probe = try CPGGroup(name: "mirrorlogd-probe", patience: .eventLoop)
                let me = probe.localMember
                probe.close()
                node = ClusterNode(me: me, quorum: QuorumView(quorate: monitor.isQuorate, nodes: monitor.nodes))
                if let operationsPerMessage { node!.operationsPerMessage = operationsPerMessage }
                logger.info("connected to corosync as node \(me.nodeID) (member \(me)); quorate: \(monitor.isQuorate)")
                quorum = monitor
            } else {
                quorum = monitor
                logger.info("reconnected to corosync; rejoining \(node!.groups.count) group(s)")
                run(node!.connectionRestored())
                run(node!.quorumChanged(QuorumView(quorate: monitor.isQuorate, nodes: monitor.nodes)))
            }
            connectionLostNoticeShown = false
        } catch {
            if force || !connectionLostNoticeShown {
                logger.warning("cannot reach corosync (\(error)); clustered logs are not available until it runs")
                connectionLostNoticeShown = true
            }
        }
    }

    private func connectionLost(_ error: CorosyncError) {
        logger.error("connection to corosync lost: \(error)")
        for handle in handles.values { handle.close() }
        handles.removeAll()
        backlog.removeAll()
        pendingJoins.removeAll()
        inFlight = 0
        quorum?.close()
        quorum = nil
        if node != nil { run(node!.connectionLost()) }
        lastConnectAttempt = monotonicSeconds()
    }
}
