import Foundation
import Testing
@testable import MirrorLogCore
import MirrorLogSimulation

/// The deterministic cluster simulation (Sources/MirrorLogSimulation, Docs/simulation.md) under
/// `swift test`: a sample of seeds in the debug build (the 10,000-seed run uses the release
/// executable `mirrorlog-sim`, see scripts/run-tests.sh), the replay of one seed, the seeds that
/// once failed, and the simulated CPG's own guarantees.
@Suite("Cluster simulation")
struct SimulationTests {
    /// Seeds per batch; `SIM_SEEDS` overrides (total over the 8 batches).
    static let perBatch: UInt64 = {
        if let text = ProcessInfo.processInfo.environment["SIM_SEEDS"], let total = UInt64(text) { return max(1, total / 8) }
        return 25
    }()

    /// Seeds of open core bugs (Tests/simulation/known-failures.txt, shared with the CI run).
    static let known: [UInt64: String] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../simulation/known-failures.txt").standardized.path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var known: [UInt64: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let words = line.split(separator: " ", maxSplits: 1)
            if let first = words.first, let seed = UInt64(first) { known[seed] = words.count > 1 ? String(words[1]) : "" }
        }
        return known
    }()

    /// Runs `seeds` and returns one line per failing seed that is not a known open bug.
    static func failures(_ seeds: some Sequence<UInt64>, options: ClusterSimulation.Options = .init()) -> [String] {
        seeds.compactMap { seed in
            guard known[seed] == nil, let violation = ClusterSimulation.run(seed: seed, options: options).violation else { return nil }
            return violation.description
        }
    }

    @Test("seeds pass (a sample of the CI range in every test run; 8 batches run in parallel)", arguments: 0 ..< 8)
    func seedBatch(_ batch: Int) {
        let start = UInt64(batch) * Self.perBatch
        let failing = Self.failures(start ..< start + Self.perBatch)
        #expect(failing.isEmpty, "\(failing.count) of \(Self.perBatch) seeds failed:\n\(failing.joined(separator: "\n"))")
    }

    @Test("no seed is listed as a known open bug: every class found so far is fixed in the core")
    func knownListIsEmpty() {
        #expect(Self.known.isEmpty, "known-failures.txt lists \(Self.known.keys.sorted())")
    }

    /// `SIM_SEED=123 swift test --filter SimulationReplay` replays one seed with its trace;
    /// `SIM_MUTATION=<name>` replays it with a broken rule (see ClusterMutation). Without SIM_SEED
    /// it replays seed 0 quietly: the replay path itself stays tested.
    @Test("SimulationReplay: the seed in SIM_SEED (seed 0 without it)")
    func SimulationReplay() throws {
        let environment = ProcessInfo.processInfo.environment
        let given = environment["SIM_SEED"]
        let seed = try #require(UInt64(given ?? "0"), "SIM_SEED must be a number")
        var options = ClusterSimulation.Options(trace: true)
        if let name = environment["SIM_MUTATION"] {
            let mutation = try #require(ClusterMutation(rawValue: name), "unknown SIM_MUTATION \(name); one of \(ClusterMutation.allCases.map(\.rawValue))")
            options.configure = { $0.mutation = mutation }
        }
        let outcome = ClusterSimulation.run(seed: seed, options: options)
        if given != nil {
            print("seed \(seed): \(outcome.configuration)")
            for line in outcome.trace { print(line) }
        }
        #expect(!outcome.trace.isEmpty, "a replay keeps its trace")
        #expect(outcome.steps > 0)
        #expect(outcome.violation == nil, "\(outcome.violation.map { "\($0)" } ?? "")")
    }

    /// Seeds that failed while the simulation was built, each with the bug it found (fixed since).
    /// They stay: a seed names a whole run, so they pass now and must keep passing.
    static let regressions: [(seed: UInt64, found: String)] = [
        (16, "a FLUSH with nothing new to write was answered before the write carrying its marks reached the log device"),
        (72, "a rebooted node's new daemon (fresh kernel) adopted its dead predecessor's marks: held forever, torn regions never resynced"),
        (0, "a joiner's own RESUME, already contained in the transferred state, was never answered"),
        (105, "destroying and re-creating a log before the detach went out left the new instance waiting for the state forever; "
            + "the writer's re-write after a transfer cleared its dirty-block map only on the writer (replicas differed)"),
        (694, "a joiner trusted a census written before its sender saw it join, and founded a second state"),
        (411, "a daemon took its own census as an attach of its re-created log instance"),
        (865, "a SET_REGION_SYNC(r, 0) from another member ended a resync still running (the region was handed out twice)"),
        (73, "GET_SYNC_COUNT answered region_count while a failed member's regions were held (dm-raid1 then stops asking IS_REMOTE_RECOVERING)"),
        (1218, "a recover_done sent before another member failed released that member too, though its node was never fenced"),
        (920, "the only member holding a log's state left before its transfer reached the others: they all waited forever"),
        (350, "the member that founded a log detached before its snapshot went out: the others waited forever"),
        (717, "a re-created log instance took another member's attach (naming its destroyed instance) for its own join"),
        (100042, "after (re)founding, a member re-marked regions whose clear its kernel had already sent"),
        (121, "a device write of a state that was since replaced completed and multicast flushed(22) into the new state, "
            + "whose flush numbers restarted at 0: later FLUSHes were answered before their marks reached the log device"),
        (444, "the same stale flushed(n) of an older state (another schedule)"),
        (49, "the disk writer destroyed its log instance while its device writes were in flight (asynchronous disk); "
            + "its detach handed the role on, and its older image landed after the new writer's"),
        (486, "a state founded anew answered IS_REMOTE_RECOVERING with a hint past regions its log device (not read yet) records dirty"),
        (9952, "the same answer before the log device was read (another schedule)"),
        (7555, "a FLUSH reached a state founded anew before it read the log device and was answered at once, "
            + "while the device still recorded the marked region clean (found once the batching window was simulated)"),
        (733, "a census listed a log whose destroyed instance's detach was already on its way: the others attached the "
            + "sender again and never sent its next instance the state (class C; 2260, 3628, 4506, 7812, 8090, 9427 too)"),
        (1797, "simulator: a failure delivered after its node was fenced opened a record that never ended (class D; 4641 too)"),
        (6929, "simulator: a write that failed on a leg while its region was held for recovery let the copy start anyway"),
        (25, "a rebooted node's second new daemon reconnected to the fresh kernel with a CTR that looked like a reconnect, "
            + "and took over its pre-reboot predecessor's marks (class B; 4300, 6912, 9015, 9690, 9724 too): boot ids now tell"),
        (4300, "class B, another schedule"),
        (326, "a state founded after a merge had not learned a failed member's boot id: its restarted daemon (same kernel) "
            + "must still take over its marks, or recovery waits forever for a grant its orphan lock never gives"),
        (587, "the snapshot left out the members whose failure holds state changes (cut off): a joiner applied what the others held"),
        (2214, "simulator: a node that boots again before it is fenced has lost its old kernel (its failure records end, its locks are purged)"),
        (19903, "simulator: a failure delivered after its node had booted again opened a record for the dead kernel"),
        (7, "simulator: dm-raid1 holds writes after a failed log flush (log_failure)"),
        (9, "simulator: a daemon's device writes complete in the order they were issued"),
        (12, "simulator: work in flight when no daemon holds the state any more is orphaned"),
        (138, "simulator: orphaned regions include those whose FLUSH was outstanding"),
        (146, "simulator: a copy whose SET_REGION_SYNC was applied is no longer being written"),
        (763, "simulator: a side's failure records of members that lived on the other side end at the merge"),
        (642, "simulator: failure records exclude orphaned regions"),
        (96, "simulator: a shell drops its TRY_AGAIN backlog when it leaves the group"),
        (1638, "simulator: a copy started before the state was founded anew is orphaned"),
        (1122, "simulator: a state founded while others exist counts as a loss of what went before"),
        (1806, "simulator: at a merge, the later failure record of a member wins"),
        (475, "simulator: quiet kernels poll slowly once there is no resync work"),
    ]

    @Test("seeds that once failed pass", arguments: regressions.map(\.seed))
    func regression(_ seed: UInt64) {
        let outcome = ClusterSimulation.run(seed: seed)
        let found = Self.regressions.first { $0.seed == seed }!.found
        #expect(outcome.violation == nil, "regression seed \(seed) (found: \(found)) fails again: \(outcome.violation.map { "\($0)" } ?? "")")
    }

    @Test("a seed names one run exactly")
    func deterministic() {
        for seed: UInt64 in [1, 2, 3] {
            let a = ClusterSimulation.run(seed: seed, options: .init(trace: true))
            let b = ClusterSimulation.run(seed: seed, options: .init(trace: true))
            #expect(a.steps == b.steps)
            #expect(a.trace == b.trace)
            #expect(a.violation?.description == b.violation?.description)
        }
    }

    @Test("every seed's configuration is within the issue's bounds")
    func configurations() {
        var nodeCounts = Set<Int>()
        var types = Set<LogType>()
        for seed: UInt64 in 0 ..< 500 {
            let c = ClusterSimulation.Configuration(seed: seed)
            #expect((2 ... 8).contains(c.nodeCount))
            #expect(c.initialNodes * 2 > c.nodeCount && c.initialNodes <= c.nodeCount)
            #expect(c.regionCount == (c.lengthSectors + 1023) / 1024)
            nodeCounts.insert(c.nodeCount)
            types.insert(c.logType)
        }
        #expect(nodeCounts == Set(2 ... 8))
        #expect(types == [.clusteredCore, .clusteredDisk])
    }
}

/// The simulated CPG keeps extended virtual synchrony.
@Suite("Simulated CPG")
struct SimulatedCPGTests {
    let a = MemberID(nodeID: 1, pid: 10)
    let b = MemberID(nodeID: 2, pid: 20)
    let c = MemberID(nodeID: 3, pid: 30)
    let g = "g"

    func three() -> SimulatedCPG {
        var cpg = SimulatedCPG()
        for (node, member) in [(1, a), (2, b), (3, c)] {
            cpg.addNode(UInt32(node), toComponent: 0)
            cpg.join(member, group: g)
        }
        while cpg.pendingCount > 0 { _ = cpg.deliverNext(in: 0) }
        return cpg
    }

    func deliverAll(_ cpg: inout SimulatedCPG) -> [[SimulatedCPG.Delivery]] {
        var out: [[SimulatedCPG.Delivery]] = []
        var progress = true
        while progress {
            progress = false
            for index in cpg.components.indices where cpg.canDeliver(index) {
                out.append(cpg.deliverNext(in: index))
                progress = true
                break
            }
        }
        return out
    }

    @Test("a failed member's undelivered messages reach all survivors or none")
    func crashVariants() {
        for reachAll in [false, true] {
            var cpg = three()
            cpg.multicast([1], group: g, from: c)
            cpg.multicast([2], group: g, from: a)
            if !reachAll { cpg.dropUndelivered(from: c) }
            cpg.remove(c, reason: .processDown)
            let events = deliverAll(&cpg)
            let fromC = events.filter { $0.contains { if case .message(_, c, _) = $0.event { return true }; return false } }
            #expect(fromC.count == (reachAll ? 1 : 0))
            // Whatever reached one survivor reached both, before the configuration change.
            for event in fromC { #expect(Set(event.map(\.member)).isSuperset(of: [a, b])) }
            #expect(events.last?.allSatisfy { if case .change = $0.event { return true }; return false } == true)
        }
    }

    @Test("a partition splits the order at its marker; each side sees the other leave with node down")
    func partition() {
        var cpg = three()
        cpg.multicast([1], group: g, from: a)
        cpg.partition(component: 0, splitting: [3], at: 1)
        cpg.multicast([2], group: g, from: a)
        cpg.multicast([3], group: g, from: c)
        let events = deliverAll(&cpg)
        #expect(cpg.components.count == 2)
        // Before the marker: everybody. After it: only the sender's side.
        #expect(Set(events[0].map(\.member)) == [a, b, c])
        let changes = events[1]
        #expect(changes.count == 3)
        for delivery in changes {
            guard case let .change(_, change) = delivery.event else { Issue.record("expected a change"); continue }
            if delivery.member == c {
                #expect(change.members == [c] && change.left.map(\.member) == [a, b] && change.left.allSatisfy { $0.reason == .nodeDown })
            } else {
                #expect(change.members == [a, b] && change.left.map(\.member) == [c])
            }
        }
        let rest = events.dropFirst(2).flatMap { $0 }
        #expect(rest.filter { if case .message(_, a, _) = $0.event { return true }; return false }.map(\.member).sorted() == [a, b])
        #expect(rest.filter { if case .message(_, c, _) = $0.event { return true }; return false }.map(\.member) == [c])
    }

    @Test("a merge waits for both markers; each side sees the other join")
    func merge() {
        var cpg = three()
        cpg.partition(component: 0, splitting: [3], at: 0)
        _ = deliverAll(&cpg)
        cpg.merge(0, 1, at: 0, 0)
        cpg.multicast([9], group: g, from: a)
        let events = deliverAll(&cpg)
        #expect(cpg.components.count == 1)
        let change = events.first { $0.contains { if case .change = $0.event { return true }; return false } }!
        for delivery in change {
            guard case let .change(_, c2) = delivery.event else { continue }
            #expect(c2.members == [a, b, c])
            #expect(c2.joined == (delivery.member == c ? [a, b] : [c]))
        }
        // The message sent after the merge was queued reaches the merged membership.
        #expect(Set(events.last!.map(\.member)) == [a, b, c])
    }

    @Test("TRY_AGAIN: refused multicasts wait in order and nothing fails")
    func flowControl() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB])
        k.sim.flowControlled = [nodeA]
        let s1 = k.send(.markRegion, regions([1]), on: nodeA)
        k.sim.flushOutbound()
        let s2 = k.send(.markRegion, regions([2]), on: nodeA)
        k.sim.settle()
        #expect(k.sim.reply(of: nodeA, seq: s1) == nil && k.sim.refusedMulticasts > 0)
        k.sim.flowControlled = []
        k.sim.settle()
        #expect(k.sim.reply(of: nodeA, seq: s1) == .ok)
        #expect(k.sim.reply(of: nodeA, seq: s2) == .ok)
        #expect(k.flag(.isClean, 2, on: nodeB) == false)
    }
}
