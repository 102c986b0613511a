public enum SimulationInvariant: String, Sendable, CaseIterable {
    /// Members of one component that hold the state agree on it after every step.
    case replicasAgree = "replicas agree"
    /// A region a live member marked (and writes) is never clean, in any replica or on the device.
    case markedNeverClean = "marked region never clean"
    /// A region a failed, unfenced member may be writing is never resync work nor "not recovering".
    case failedMemberRegions = "failed member's regions held"
    /// At most one node resyncs a region at a time.
    case singleResyncer = "one resyncer per region"
    /// in_sync_hint never passes the lowest region that needs resync.
    case inSyncHint = "in_sync_hint bound"
    /// Every kernel request gets exactly one reply.
    case oneReplyPerRequest = "one reply per request"
    /// Once the faults stop, the cluster converges and resync completes within the bound.
    case convergence = "convergence"
}

/// A broken invariant, with what it takes to replay it.
public struct SimulationViolation: Error, Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var step: Int
    public var invariant: SimulationInvariant
    public var message: String

    public var description: String {
        "seed \(seed): \(invariant) broken at step \(step): \(message)\n  replay: \(Self.replayCommand(seed: seed))"
    }

    /// The one-line command that replays a seed.
    public static func replayCommand(seed: UInt64, mutation: String? = nil) -> String {
        if let mutation {
            return "SIM_SEED=\(seed) SIM_MUTATION=\(mutation) swift test --filter SimulationReplay"
        }
        return "swift run -c release mirrorlog-sim --seed \(seed) --trace   (or: SIM_SEED=\(seed) swift test --filter SimulationReplay)"
    }
}
