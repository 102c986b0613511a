import MirrorLogCore

/// A deterministic simulation of a whole cluster of mirrorlogd daemons, in the style of
/// FoundationDB's: 2 to 8 nodes, each with a daemon (the pure ``ClusterNode``) and a simulated
/// dm-raid1 kernel (``SimulatedKernel``), over a ``SimulatedCPG`` with extended virtual synchrony,
/// all driven by one seeded scheduler on a virtual clock. Faults are injected for a while, then
/// healed; the invariants of ``SimulationInvariant`` are checked after every step, and the cluster
/// must converge within a bounded number of steps once the faults stop.
///
/// A seed names one run exactly: the configuration (node count, regions, log type, flush mode,
/// fault rates) and every choice of the scheduler come from it.
public struct ClusterSimulation: Sendable {
    // MARK: Configuration

    public struct Configuration: Sendable, CustomStringConvertible {
        public var nodeCount: Int
        public var initialNodes: Int
        public var regionCount: UInt64
        public var lengthSectors: UInt64
        public var logType: LogType
        public var syncMode: SyncMode
        public var integratedFlush: Bool
        public var asyncDisk: Bool
        /// Both halves of a two-node cluster stay quorate (corosync `two_node: 1`).
        public var twoNode: Bool
        public var faultSteps: Int
        /// Per mille per step.
        public var faultRate: Int
        /// Per mille per kernel tick.
        public var writeChance: Int

        /// The configuration a seed names.
        public init(seed: UInt64) {
            var rng = SimRandom(seed: seed ^ 0xC0FF_EE00_D15E_A5E5)
            nodeCount = rng.pick([2, 3, 3, 3, 4, 4, 5, 5, 6, 7, 8])
            initialNodes = rng.int(nodeCount / 2 + 1 ... nodeCount)
            regionCount = rng.pick([3, 8, 16, 16, 24, 40, 64, 100] as [UInt64])
            lengthSectors = regionCount * 1024 - (rng.chance(300) ? UInt64(rng.int(1 ... 1023)) : 0)
            logType = rng.chance(350) ? .clusteredDisk : .clusteredCore
            syncMode = rng.pick([.default, .forceSync, .noSync, .noSync] as [SyncMode])
            integratedFlush = rng.chance(500)
            asyncDisk = rng.chance(500)
            twoNode = false
            faultSteps = rng.int(300 ... 1200)
            faultRate = rng.int(8 ... 40)
            writeChance = rng.int(80 ... 500)
        }

        /// The CTR string the kernels send.
        public var table: String {
            var words = ["\(lengthSectors)", logType.rawValue]
            if logType.hasLogDevice { words.append("/dev/sim-log") }
            words.append("1024")
            if syncMode != .default { words.append(syncMode.rawValue) }
            return words.joined(separator: " ")
        }

        public var description: String {
            "\(nodeCount) nodes (\(initialNodes) at start\(twoNode ? ", two_node" : "")), \(regionCount) regions, \(logType)\(syncMode == .default ? "" : " " + syncMode.rawValue)"
                + "\(integratedFlush ? ", integrated_flush" : ""), \(asyncDisk ? "async" : "sync") disk, \(faultSteps) fault steps at \(faultRate)‰, writes \(writeChance)‰"
        }
    }

    /// How a run is driven.
    public struct Options: Sendable {
        /// Bound on the steps after the faults stop until the cluster must have converged.
        public var convergenceBound = 12_000
        /// Keep a trace of every step (for replays).
        public var trace = false
        /// Applied to every daemon when it starts (mutation tests).
        public var configure: (@Sendable (inout ClusterNode) -> Void)?
        /// Override of the seed's configuration.
        public var adjust: (@Sendable (inout Configuration) -> Void)?

        public init(convergenceBound: Int = 12_000, trace: Bool = false, configure: (@Sendable (inout ClusterNode) -> Void)? = nil, adjust: (@Sendable (inout Configuration) -> Void)? = nil) {
            self.convergenceBound = convergenceBound
            self.trace = trace
            self.configure = configure
            self.adjust = adjust
        }
    }

    /// What a run found.
    public struct Outcome: Sendable {
        public var seed: UInt64
        public var configuration: Configuration
        public var violation: SimulationViolation?
        /// Steps in total, and after the faults stopped.
        public var steps: Int
        public var convergenceSteps: Int
        public var statistics: Statistics
        /// The trace (with ``Options/trace``).
        public var trace: [String]
    }

    public struct Statistics: Sendable {
        public var deliveries = 0
        public var replies = 0
        public var faults: [String: Int] = [:]
        public var writes = 0
        public var resyncedRegions = 0
        public var refusedMulticasts = 0
        /// Merges of components none of which was quorate.
        public var quorumlessMerges = 0
        /// Times no daemon held the state while kernels still had work in flight (a total loss:
        /// whoever founds the state next cannot know that work).
        public var stateLosses = 0
    }

    // MARK: State

    struct Node: Sendable {
        let id: UInt32
        var up = false
        var daemon: MemberID?
        var kernel: SimulatedKernel?
        var pid: UInt32
        var devices: UInt64 = 0
        var seq: UInt32
        /// Numbers the node's kernel devices (a reboot or a new activation makes a new one).
        var incarnation = -1
        /// Fencing this node fails until the faults stop.
        var fenceFails = false
        /// Fenced since it last went down: its kernel is dead and writes nothing until it powers on.
        var fenced = false
        /// Power-on count: the boot id of its kernel.
        var boot: UInt64 = 0
    }


    public let seed: UInt64
    public let configuration: Configuration
    let options: Options
    var rng: SimRandom
    public internal(set) var cluster = SimulatedCluster()
    var nodes: [Node] = []
    public internal(set) var now: UInt64 = 0
    public internal(set) var step = 0
    var healStep = 0
    var healing = false
    var listed: [Int: Set<UInt32>] = [:]
    var quorumSeen: [MemberID: QuorumView] = [:]
    var records: [FailureRecord] = []
    var burstUntil: UInt64 = 0
    /// Resync work a kernel got before the state was lost cluster-wide, by node index.
    var orphanedResync: [Int: UInt64] = [:]
    /// Regions a kernel held dirty when the state was lost cluster-wide, by node index.
    var orphanedWrites: [Int: Set<UInt64>] = [:]
    var stateLost = false
    var everFounded = false
    let uuid = "LVM-simulated-mirror"
    /// The log's key in ``ClusterNode/logs``.
    let logKey: [UInt8]
    var violation: SimulationViolation?
    var trace: [String] = []
    var statistics = Statistics()

    public init(seed: UInt64, options: Options = Options()) {
        self.seed = seed
        var configuration = Configuration(seed: seed)
        options.adjust?(&configuration)
        self.configuration = configuration
        self.options = options
        self.rng = SimRandom(seed: seed)
        self.logKey = Array(uuid.utf8)
        cluster.keepHistory = false
        cluster.deviceSize = 4096
        cluster.asyncDisk = configuration.asyncDisk
        cluster.configure = options.configure
        for id in 1 ... UInt32(configuration.nodeCount) {
            nodes.append(Node(id: id, pid: id * 100, seq: id << 24))
        }
        listed[0] = []
    }

    /// Runs seed `seed` to the end: faults, healing, convergence.
    public static func run(seed: UInt64, options: Options = Options()) -> Outcome {
        var simulation = ClusterSimulation(seed: seed, options: options)
        simulation.runToEnd()
        return simulation.outcome
    }

    public var outcome: Outcome {
        var statistics = self.statistics
        statistics.refusedMulticasts = cluster.refusedMulticasts
        return Outcome(seed: seed, configuration: configuration, violation: violation, steps: step, convergenceSteps: healStep, statistics: statistics, trace: trace)
    }

    public mutating func runToEnd() {
        for index in 0 ..< configuration.initialNodes { powerOn(index) }
        while violation == nil, step < configuration.faultSteps { runStep() }
        guard violation == nil else { return }
        startHealing()
        while violation == nil {
            runStep()
            healStep += 1
            if healStep % 16 == 0, healStep > 400, converged() { return }
            if healStep >= options.convergenceBound {
                fail(.convergence, "not converged \(healStep) steps after the faults stopped: \(convergenceProblem() ?? "?")")
                return
            }
        }
    }

    // MARK: Scheduler

    mutating func runStep() {
        step += 1
        now += UInt64(rng.below(4))
        cluster.now = now * 1_000_000   // the clock counts milliseconds; the services take nanoseconds
        let canDeliver = cluster.cpg.components.indices.filter { cluster.cpg.canDeliver($0) }
        let flushers = cluster.nodes.keys.filter { cluster.hasOutbound($0) }
        let kernels = nodes.indices.filter { nodes[$0].kernel != nil }
        let disk = cluster.diskWrites.count
        let dlmEvents = cluster.dlm.events.count
        // Kernel ticks and multicasts change no replica: the replica invariants are checked after
        // every other step (and the per-reply ones after every reply).
        var replicasMayChange = true
        if !healing, rng.chance(configuration.faultRate) {
            injectFault()
        } else if healing, rng.chance(30) {
            healOne()
        } else {
            var weights = [canDeliver.isEmpty ? 0 : 40, flushers.isEmpty ? 0 : 20, kernels.isEmpty ? 0 : 35, disk == 0 ? 0 : 10, dlmEvents == 0 ? 0 : 10]
            let total = weights.reduce(0, +)
            if total == 0 {
                now += 50
                cluster.now = now * 1_000_000
            } else {
                var roll = rng.below(total)
                var choice = 0
                while roll >= weights[choice] {
                    roll -= weights[choice]
                    choice += 1
                }
                weights = []
                switch choice {
                case 0:
                    deliver(rng.pick(canDeliver))
                case 1:
                    let member = rng.pick(flushers.sorted())
                    note("flush \(member)")
                    cluster.flushOutbound(of: member)
                    replicasMayChange = false
                case 2:
                    tickKernel(rng.pick(kernels))
                    replicasMayChange = false
                case 4:
                    // Grants for different daemons come in any order; one daemon's in its order.
                    let members = Array(Set(cluster.dlm.events.map(\.member))).sorted()
                    let member = rng.pick(members)
                    let index = cluster.dlm.events.firstIndex { $0.member == member }!
                    let event = cluster.dlm.events[index].event
                    note("dlm → \(member): \(event)")
                    cluster.deliverDLMEvent(index)
                default:
                    // Each daemon's writes complete in the order it issued them (the shell writes
                    // synchronously); the core relies on it: two writes of one block may be in flight.
                    let writers = Array(Set(cluster.diskWrites.map(\.member))).sorted()
                    let writer = rng.pick(writers)
                    let index = cluster.diskWrites.firstIndex { $0.member == writer }!
                    let write = cluster.diskWrites[index]
                    note("disk write \(write.io.ticket) of \(write.member) completes")
                    cluster.completeDiskWrite(index)
                }
            }
        }
        let replies = processReplies()
        refreshRecords()
        if violation == nil, replicasMayChange || replies > 0 { checkState() }
    }

    mutating func deliver(_ index: Int) {
        let component = cluster.cpg.components[index].id
        let before = Set(cluster.cpg.components.map(\.id))
        let quorumless = cluster.cpg.components.count > 1 && !cluster.cpg.components.contains { isQuorate($0) }
        var sideOfNode: [UInt32: Int] = [:]
        for c in cluster.cpg.components { for node in c.nodes { sideOfNode[node] = c.id } }
        let deliveries = cluster.deliver(component: index)
        statistics.deliveries += 1
        let after = Set(cluster.cpg.components.map(\.id))
        if options.trace, let first = deliveries.first {
            switch first.event {
            case let .message(_, from, bytes):
                let what = (try? ClusterMessage.decode(bytes[...])).map(Self.describe) ?? "?"
                note("deliver c\(component) from \(from): \(what) to \(deliveries.count)")
            case let .change(_, change):
                note("deliver c\(component) change members=\(change.members) joined=\(change.joined) left=\(change.left.map { "\($0.member)(\($0.reason))" })\(deliveries.count > change.members.count ? " (topology)" : "")")
            }
        }
        if options.trace, let first = deliveries.first(where: { replicaView(of: $0.member) != nil }), let view = replicaView(of: first.member) {
            let r = view.replica
            note("  state at \(first.member): members=\(r.members) failed=\(r.failed) recovering=\(r.log.recovering.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }) suspects=\(r.suspects.map { s in (0 ..< s.count).filter { s[$0] } } ?? []) sync=\(r.log.syncCount) flush=\(r.ackedFlush)/\(r.flushNumber) dirty=\(r.log.hasDirtyBlocks) slots=\(r.slots.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" })")
        }
        if before != after {
            if after.count < before.count, quorumless {
                statistics.quorumlessMerges += 1
            }
            // A partition or merge: the new components' quorum and node lists.
            for id in after.subtracting(before) { listed[id] = listed[component] ?? [] }
            if after.count < before.count {
                // A merge: a side's records about members that lived on the other side are stale
                // (the other side saw what they did, and keeps its own records of them).
                let merging = before.subtracting(after).union([component])
                records.removeAll { record in
                    guard let side = sideOfNode[record.member.nodeID] else { return false }
                    return side != record.component && merging.contains(side)
                }
                // A member both sides saw fail: the later record comes from the side it lived on.
                var latest: [MemberID: Int] = [:]
                for record in records where merging.contains(record.component) { latest[record.member] = max(latest[record.member] ?? 0, record.step) }
                records.removeAll { merging.contains($0.component) && $0.step < latest[$0.member] ?? 0 }
            }
            for id in before.subtracting(after) {
                let survivor = after.contains(component) ? component : after.first { !before.contains($0) } ?? component
                listed[survivor, default: []].formUnion(listed[id] ?? [])
                listed[id] = nil
                for i in records.indices where records[i].component == id { records[i].component = survivor }
            }
            let components = cluster.cpg.components
            note("topology: \(components.map { "c\($0.id)=\($0.nodes.sorted())" }.joined(separator: " "))")
            refreshQuorum()
        }
        // Failure records start where the failure is delivered and end where a daemon of the
        // failed member's node joins again.
        for delivery in deliveries {
            guard case let .change(_, change) = delivery.event else { continue }
            guard let at = cluster.cpg.existingComponent(ofNode: delivery.member.nodeID) else { continue }
            let id = cluster.cpg.components[at].id
            for departure in change.left where departure.reason.isFailure {
                guard !records.contains(where: { $0.member == departure.member && $0.component == id }) else { continue }
                let node = nodes[Int(departure.member.nodeID) - 1]
                // Fenced before its failure was delivered here: nothing of it is still written (the
                // regions it tore are resynced after the recovery, which is what must happen).
                if node.fenced { continue }
                let incarnation = memberKernel[departure.member] ?? -1
                // Its kernel is gone for sure (the node booted again before this failure was
                // delivered): nothing of it is still written.
                if goneIncarnations.contains(incarnation) { continue }
                var regions = Set<UInt64>()
                var alive = false
                if node.up, let kernel = node.kernel, node.incarnation == incarnation {
                    // Its kernel still runs: what it writes or copies now, and later (a partition).
                    let index = Int(departure.member.nodeID) - 1
                    regions = Set(kernel.markedWrites).subtracting(orphanedWrites[index] ?? [])
                    if let copy = kernel.copying, orphanedResync[index] != copy { regions.insert(copy) }
                    alive = true
                } else if let dead = deadWrites[incarnation] {
                    regions = dead
                }
                records.append(FailureRecord(member: departure.member, component: id, regions: regions, kernelAlive: alive, incarnation: incarnation, step: step))
            }
            for joined in change.joined {
                records.removeAll { $0.component == id && $0.member.nodeID == joined.nodeID }
            }
        }
    }

    var liveMembers: [MemberID] { cluster.nodes.keys.sorted() }

    /// Marked writes and the copy in flight when a node died, by kernel incarnation.
    var deadWrites: [Int: Set<UInt64>] = [:]
    /// Kernel incarnations that were dead when the state was lost cluster-wide: their last writes
    /// are orphaned (nobody can know them).
    var forgottenIncarnations: Set<Int> = []
    /// Kernel incarnations whose node was fenced or booted again: dead for sure.
    var goneIncarnations: Set<Int> = []
    /// The kernel incarnation each daemon serves.
    var memberKernel: [MemberID: Int] = [:]
    var incarnations = 0

    mutating func tickKernel(_ index: Int) {
        guard nodes[index].kernel != nil else { return }
        let burst = now < burstUntil
        let requests = nodes[index].kernel!.tick(now: now, rng: &rng, writeChance: burst ? 900 : configuration.writeChance, burst: burst)
        guard let daemon = nodes[index].kernel!.daemon else { return }
        for request in requests {
            note("kernel \(index + 1) → \(daemon): \(request.type) seq \(request.header.seq) \(Self.describe(request.payload))")
            cluster.send(request, on: daemon)
            processReplies()
        }
    }

    // MARK: Replies

    @discardableResult
    mutating func processReplies() -> Int {
        let sent = cluster.takeOutbox()
        for item in sent {
            statistics.replies += 1
            let index = Int(item.member.nodeID) - 1
            guard nodes.indices.contains(index), let kernel = nodes[index].kernel, nodes[index].daemon == item.member else {
                fail(.oneReplyPerRequest, "\(item.member) answered seq \(item.header.seq), but no kernel of its node talks to it")
                return sent.count
            }
            guard let request = kernel.inFlight[item.header.seq], request.daemon == item.member, item.header.luid == kernel.luid else {
                fail(.oneReplyPerRequest, "\(item.member) answered seq \(item.header.seq) (\(item.header.rawRequestType)), which node \(index + 1)'s kernel has not sent or already had answered")
                return sent.count
            }
            note("reply \(item.member) seq \(item.header.seq) \(request.type): \(Self.describe(item.reply))\(request.abandoned ? " (late)" : "")")
            check(item.reply, to: request, from: item.member)
            _ = nodes[index].kernel!.receive(seq: item.header.seq, item.reply, now: now, rng: &rng)
            if request.type == .setRegionSync, item.reply.error == 0, case .regionSync(_, true) = request.payload { statistics.resyncedRegions += 1 }
            if violation != nil { return sent.count }
        }
        return sent.count
    }

    // MARK: Quorum and topology

    func isQuorate(_ component: SimulatedCPG.Component) -> Bool {
        let votes = component.nodes.count
        if configuration.twoNode && configuration.nodeCount == 2 { return votes >= 1 }
        return votes * 2 > configuration.nodeCount
    }

    func view(ofNode node: UInt32) -> QuorumView {
        guard let index = cluster.cpg.existingComponent(ofNode: node) else { return QuorumView(quorate: false, nodes: []) }
        let component = cluster.cpg.components[index]
        return QuorumView(quorate: isQuorate(component), nodes: (listed[component.id] ?? []).union(component.nodes))
    }

    /// Tells every daemon whose quorum view changed (at once: the shell reads quorum before the next
    /// configuration change, as if it matched their ring ids).
    mutating func refreshQuorum() {
        for member in liveMembers {
            let view = view(ofNode: member.nodeID)
            if quorumSeen[member] != view {
                quorumSeen[member] = view
                note("quorum \(member): \(view.quorate ? "quorate" : "NOT quorate") nodes=\(view.nodes.sorted())")
                cluster.setQuorum(view, on: [member])
            }
        }
    }

    // MARK: Node lifecycle

    mutating func powerOn(_ index: Int) {
        let id = nodes[index].id
        // A node that boots again before it was fenced lost its old kernel all the same: the DLM
        // purges its locks, as after fencing.
        if !nodes[index].fenced { oldKernelGone(index) }
        nodes[index].up = true
        nodes[index].fenced = false
        nodes[index].boot += 1
        let target = cluster.cpg.components.indices.max { a, b in
            (cluster.cpg.components[a].nodes.count, -a) < (cluster.cpg.components[b].nodes.count, -b)
        } ?? 0
        cluster.cpg.addNode(id, toComponent: rng.chance(800) ? target : rng.below(cluster.cpg.components.count))
        let componentID = cluster.cpg.components[cluster.cpg.existingComponent(ofNode: id)!].id
        listed[componentID, default: []].insert(id)
        note("power on node \(id) in c\(componentID)")
        createDevice(index)
        startDaemon(index)
        refreshQuorum()
    }

    mutating func createDevice(_ index: Int) {
        let node = nodes[index]
        nodes[index].devices += 1
        let seqBase = node.kernel.map(\.lastSeq) ?? node.seq
        var kernel = SimulatedKernel(node: node.id, luid: UInt64(node.id) * 1000 + nodes[index].devices, uuid: uuid, table: configuration.table, regionCount: configuration.regionCount,
                                     integratedFlush: configuration.integratedFlush, seqBase: seqBase)
        nodes[index].seq = seqBase &+ 1000
        incarnations += 1
        nodes[index].incarnation = incarnations
        if let daemon = node.daemon {
            kernel.daemonStarted(daemon)
            memberKernel[daemon] = incarnations
        }
        nodes[index].kernel = kernel
    }

    mutating func startDaemon(_ index: Int) {
        nodes[index].pid += 1
        let member = MemberID(nodeID: nodes[index].id, pid: nodes[index].pid)
        let view = view(ofNode: nodes[index].id)
        quorumSeen[member] = view
        cluster.start(member, quorum: view, boot: nodes[index].boot)
        nodes[index].daemon = member
        nodes[index].kernel?.daemonStarted(member)
        memberKernel[member] = nodes[index].incarnation
        note("daemon \(member) starts")
    }

    mutating func crashDaemon(_ index: Int, reason: LeaveReason) {
        guard let member = nodes[index].daemon else { return }
        let all = rng.chance(500)
        note("daemon \(member) crashes (\(reason)); its undelivered messages reach \(all ? "all survivors" : "nobody")")
        cluster.crash(member, reason: reason, undeliveredReachSurvivors: all)
        nodes[index].daemon = nil
        nodes[index].kernel?.daemonLost()
        quorumSeen[member] = nil
    }

    mutating func crashNode(_ index: Int) {
        let id = nodes[index].id
        if let kernel = nodes[index].kernel {
            var writes = Set(kernel.markedWrites).subtracting(orphanedWrites[index] ?? [])
            if let copy = kernel.copying, orphanedResync[index] != copy { writes.insert(copy) }
            deadWrites[nodes[index].incarnation] = writes
        }
        crashDaemon(index, reason: .nodeDown)
        nodes[index].kernel = nil
        nodes[index].up = false
        cluster.cpg.removeNode(id)
        note("node \(id) is down")
        refreshQuorum()
    }

    /// Fences `index`: powered off if it still runs, and no longer in any quorum view.
    mutating func fence(_ index: Int) {
        let id = nodes[index].id
        if nodes[index].up { crashNode(index) }
        oldKernelGone(index)
        nodes[index].fenced = true
        for key in listed.keys { listed[key]!.remove(id) }
        note("node \(id) fenced")
        refreshQuorum()
    }

    /// Node `index`'s last kernel is dead for sure (fenced, or the node booted again): the DLM purges
    /// its locks, and nothing it wrote is still being written. What it was writing when it died must
    /// be resynced: every quorate replica elsewhere holds it for the node's member or has it out of sync.
    mutating func oldKernelGone(_ index: Int) {
        let id = nodes[index].id
        goneIncarnations.insert(nodes[index].incarnation)
        let known = !forgottenIncarnations.contains(nodes[index].incarnation)
        let writes = known ? (deadWrites[nodes[index].incarnation] ?? []).subtracting(orphanedWrites[index] ?? []) : []
        let survivors = replicas().filter { $0.authoritative && $0.member.nodeID != id }
        if let finding = SimulationChecks.fencedWritesKnown(survivors, node: id, writes: writes) { fail(finding.invariant, finding.message) }
        cluster.purgeLocks(ofNode: id)
        records.removeAll { $0.member.nodeID == id }
    }

    /// Nodes a quorate component may fence: in its view's node list but not in it.
    var fenceable: [Int] {
        var out: Set<Int> = []
        for component in cluster.cpg.components where isQuorate(component) {
            for id in (listed[component.id] ?? []).subtracting(component.nodes) { out.insert(Int(id) - 1) }
        }
        return out.sorted()
    }

    // MARK: Invariants

    mutating func fail(_ invariant: SimulationInvariant, _ message: String) {
        guard violation == nil else { return }
        violation = SimulationViolation(seed: seed, step: step, invariant: invariant, message: message)
        note("VIOLATION \(invariant): \(message)")
    }

    /// An active replica and where it is.
    struct ReplicaView {
        var member: MemberID
        var component: Int
        var replica: ReplicatedLog
        var authoritative: Bool
    }

    func replicaView(of member: MemberID) -> ReplicaView? {
        guard let node = cluster.nodes[member], let group = node.logs[logKey], group.status == .active, let replica = group.replica,
              let at = cluster.cpg.existingComponent(ofNode: member.nodeID) else { return nil }
        let view = quorumSeen[member] ?? node.quorum
        return ReplicaView(member: member, component: cluster.cpg.components[at].id, replica: replica, authoritative: view.quorate)
    }

    func replicas() -> [ReplicaView] {
        var out: [ReplicaView] = []
        for (member, node) in cluster.nodes {
            guard let group = node.logs[logKey], group.status == .active, let replica = group.replica,
                  let at = cluster.cpg.existingComponent(ofNode: member.nodeID) else { continue }
            let view = quorumSeen[member] ?? node.quorum
            out.append(ReplicaView(member: member, component: cluster.cpg.components[at].id, replica: replica, authoritative: view.quorate))
        }
        return out.sorted { $0.member < $1.member }
    }

    mutating func checkState() {
        let views = replicas()
        // A state founded from scratch after the first one knows nothing of what went before (the
        // last member holding the state left before it reached anyone else).
        let founded = cluster.takeFoundings()
        let refounded = !founded.isEmpty && everFounded
        if !founded.isEmpty {
            everFounded = true
            note("state founded from scratch by \(founded)")
        }
        if views.isEmpty || refounded {
            // No daemon holds the state (every one died or waits), or one started it afresh: it
            // cannot know what the kernels of dead or unreachable daemons still do. Their work in
            // flight is orphaned, and nothing can be held for failed members any more.
            if !records.isEmpty || nodes.contains(where: { !($0.kernel?.markedWrites.isEmpty ?? true) || $0.kernel?.resyncRegion != nil }) {
                if !stateLost || refounded { statistics.stateLosses += 1 }
                stateLost = true
            }
            records.removeAll()
            // Dead kernels' last writes are as unknowable as the live ones' (a fence check skips them).
            for node in nodes where !node.up { forgottenIncarnations.insert(node.incarnation) }
            for i in nodes.indices {
                orphanedResync[i] = nodes[i].kernel?.resyncRegion
                // Dirty regions: the kernel writes them again without a new mark until it clears them.
                orphanedWrites[i] = nodes[i].kernel?.dirtyRegions ?? []
            }
        } else {
            stateLost = false
        }
        // Orphaned writes stay exempt until they end.
        for i in nodes.indices where !(orphanedWrites[i]?.isEmpty ?? true) {
            orphanedWrites[i] = orphanedWrites[i]!.intersection(nodes[i].kernel?.dirtyRegions ?? [])
        }
        // Bookkeeping first: copies still running from before a state loss stay exempt until they end.
        var resyncing: [(node: UInt32, region: UInt64)] = []
        for (i, node) in nodes.enumerated() where node.up {
            guard let region = node.kernel?.resyncRegion else {
                orphanedResync[i] = nil
                continue
            }
            if orphanedResync[i] == region { continue }
            orphanedResync[i] = nil
            resyncing.append((node.id, region))
        }
        var marked: [(node: UInt32, region: UInt64)] = []
        for (i, node) in nodes.enumerated() where node.up {
            for region in node.kernel?.markedWrites ?? [] where !(orphanedWrites[i]?.contains(region) ?? false) { marked.append((node.id, region)) }
        }
        let image = configuration.logType.hasLogDevice ? cluster.devices["/dev/sim-log"] : nil
        let finding = SimulationChecks.replicasAgree(views, delivered: cluster.cpg.delivered)
            ?? SimulationChecks.marksNeverClean(views, marked: marked)
            ?? image.flatMap { SimulationChecks.deviceRecordsMarks($0, marked: marked) }
            ?? SimulationChecks.singleResyncer(resyncing)
        if let finding { fail(finding.invariant, finding.message) }
    }

    /// Checks one answer against the failure records and the replica of the member that gave it.
    mutating func check(_ reply: Reply, to request: SimulatedKernel.Request, from member: MemberID) {
        guard reply.error == 0, let view = replicaView(of: member), view.authoritative else { return }
        let failed = records.filter { $0.component == view.component && $0.member != member && !$0.regions.isEmpty }
        if let finding = SimulationChecks.answer(reply, to: request, from: member, replica: view.replica, failed: failed, regionCount: configuration.regionCount) {
            fail(finding.invariant, finding.message)
        }
    }

    // MARK: Convergence

    /// Whether the cluster is healthy and done: one component, every node up with its daemon and a
    /// running, idle mirror, one agreed state, nothing failed, everything in sync, no marks.
    mutating func converged() -> Bool { convergenceProblem() == nil }

    func convergenceProblem() -> String? {
        if cluster.cpg.components.count != 1 { return "\(cluster.cpg.components.count) components" }
        let statuses = cluster.nodes.values.compactMap { $0.logs[logKey]?.status }
        if !statuses.isEmpty, !statuses.contains(.active), statuses.contains(.awaitingState) {
            return "no daemon holds the state: \(statuses.filter { $0 == .awaitingState }.count) wait for a transfer nobody can send"
        }
        if cluster.cpg.pendingCount > 0 { return "\(cluster.cpg.pendingCount) events queued" }
        if !cluster.dlm.events.isEmpty { return "\(cluster.dlm.events.count) DLM event(s) queued" }
        if !cluster.diskWrites.isEmpty { return "disk writes in flight" }
        for node in nodes {
            guard node.up, let daemon = node.daemon, let kernel = node.kernel else { return "node \(node.id) has no daemon or mirror" }
            if cluster.hasOutbound(daemon) { return "\(daemon) has operations to send" }
            if kernel.phase != .running { return "node \(node.id)'s mirror is \(kernel.phase)" }
            if !kernel.isIdle { return "node \(node.id)'s kernel is busy (\(kernel.inFlight.count) request(s) in flight: \(kernel.inFlight.values.map { "\($0.type)" }))" }
            guard let group = cluster.nodes[daemon]?.logs[logKey] else { return "\(daemon) serves no log" }
            if group.status != .active { return "\(daemon) is \(group.status)" }
        }
        let views = replicas()
        guard let first = views.first else { return "no replica" }
        if Set(views.map { ReplicaSnapshot.digest($0.replica) }).count != 1 { return "replicas differ" }
        let replica = first.replica
        if replica.recoveryPending || !replica.failed.isEmpty { return "recovery still pending for \(replica.failed)" }
        if replica.log.syncCount != replica.regionCount { return "only \(replica.log.syncCount)/\(replica.regionCount) regions in sync (resyncing: \(replica.log.recovering), priority \(replica.priority))" }
        if replica.log.marks.holders.contains(where: { $0.regions.firstIndex(of: true, from: 0) < replica.regionCount }) {
            return "marks still held: \(replica.log.marks.holders.filter { $0.regions.firstIndex(of: true, from: 0) < replica.regionCount }.map { "\($0.member)" })"
        }
        if replica.members.count != nodes.count { return "\(replica.members.count) members in the replica" }
        return nil
    }
}

/// The invariants the simulation checks.
