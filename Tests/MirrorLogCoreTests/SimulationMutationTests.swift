import Testing
@testable import MirrorLogCore
import MirrorLogSimulation

/// The simulation catches real bugs: each deliberately broken rule (``ClusterMutation``) makes some
/// seed within the budget break an invariant, and that same seed passes with the rule intact.
@Suite("Cluster simulation catches broken rules")
struct SimulationMutationTests {
    /// Seeds tried per mutation (the search stops at the first failing one; see Docs/simulation.md
    /// for how many each needs).
    static let budget: UInt64 = 300

    struct Expectation: Sendable, CustomTestStringConvertible {
        var mutation: ClusterMutation
        /// Invariants the broken rule may show up as.
        var invariants: Set<SimulationInvariant>
        /// Run two-node clusters with `two_node: 1` (both halves of a split stay quorate).
        var twoNode = false
        var testDescription: String { mutation.rawValue }
    }

    static let expectations: [Expectation] = [
        // A failed member's marks released at prep: its regions are handed out or reported not
        // recovering while it may still write them.
        Expectation(mutation: .releaseMarksAtPrep, invariants: [.failedMemberRegions, .markedNeverClean]),
        // One region handed to two members.
        Expectation(mutation: .resyncRegionTwice, invariants: [.singleResyncer]),
        // in_sync_hint one past the lowest region that needs resync.
        Expectation(mutation: .hintPastDirtyRegion, invariants: [.inSyncHint, .failedMemberRegions]),
        // A clear makes a region clean that another member still marks.
        Expectation(mutation: .clearIgnoresOtherMarks, invariants: [.markedNeverClean]),
        // recover_done before the DLM granted the failed node's lock (before it was fenced).
        Expectation(mutation: .doneBeforeGrant, invariants: [.failedMemberRegions]),
        // A two_node cluster splits: each half stays quorate and answers its kernel's marks; the
        // half that is fenced dies with writes the survivor never heard of.
        Expectation(mutation: .answerDuringSplit, invariants: [.failedMemberRegions, .markedNeverClean], twoNode: true),
        // A joiner skips what was delivered during its transfer.
        Expectation(mutation: .transferSkipsBufferedEvents, invariants: [.replicasAgree, .convergence, .markedNeverClean]),
    ]

    /// Two nodes with `two_node: 1`: both halves of a split stay quorate.
    @Sendable static func twoNodeCluster(_ configuration: inout ClusterSimulation.Configuration) {
        configuration.nodeCount = 2
        configuration.initialNodes = 2
        configuration.twoNode = true
    }

    @Test("a broken rule is caught within the seed budget, and the seed passes without it", arguments: expectations)
    func caught(_ expectation: Expectation) {
        let mutation = expectation.mutation
        let twoNode: (@Sendable (inout ClusterSimulation.Configuration) -> Void)? = expectation.twoNode ? Self.twoNodeCluster : nil
        let broken = ClusterSimulation.Options(configure: { $0.mutation = mutation }, adjust: twoNode)
        let intact = ClusterSimulation.Options(adjust: twoNode)
        var caught: (seed: UInt64, violation: SimulationViolation)?
        var failingAnyway: [UInt64] = []
        for seed in 0 ..< Self.budget {
            guard let violation = ClusterSimulation.run(seed: seed, options: broken).violation else { continue }
            // A seed that also fails with the rule intact shows another bug, not this one.
            if ClusterSimulation.run(seed: seed, options: intact).violation != nil {
                failingAnyway.append(seed)
                continue
            }
            caught = (seed, violation)
            break
        }
        guard let caught else {
            Issue.record("\(mutation) was not caught within \(Self.budget) seeds (seeds failing without it too: \(failingAnyway))")
            return
        }
        #expect(expectation.invariants.contains(caught.violation.invariant),
                "\(mutation) caught at seed \(caught.seed) as \(caught.violation.invariant): \(caught.violation.message)")
        print("\(mutation): caught by seed \(caught.seed) at step \(caught.violation.step) as '\(caught.violation.invariant.rawValue)'; "
            + "replay: \(SimulationViolation.replayCommand(seed: caught.seed, mutation: mutation.rawValue))")
    }
}
