/// A deliberately broken rule of the cluster core, for proving that the deterministic simulation
/// catches such bugs (Tests/MirrorLogCoreTests/SimulationMutationTests.swift). Internal: only tests
/// (`@testable import`) can set one, on ``ClusterNode/mutation``; it is nil in every real daemon.
enum ClusterMutation: String, Sendable, CaseIterable {
    /// recover_slot releases a failed member's marks (out of sync, resynced first) at once, instead
    /// of holding them as suspects until done.
    case releaseMarksAtPrep
    /// GET_RESYNC_WORK hands out the lowest region that needs resync even if another member is
    /// already resyncing it.
    case resyncRegionTwice
    /// IS_REMOTE_RECOVERING answers an in_sync_hint one past the lowest region that needs resync.
    case hintPastDirtyRegion
    /// CLEAR_REGION makes an in-sync region clean although other members still hold marks on it.
    case clearIgnoresOtherMarks
    /// recover_done is sent at once, without waiting for the DLM to grant the failed members' node
    /// locks (that is, for their nodes to be fenced).
    case doneBeforeGrant
    /// Requests from the kernel are answered while a failed member may be on the surviving side of
    /// a split, instead of being held until done.
    case answerDuringSplit
    /// A joiner installs a transferred state without replaying what was delivered during the transfer.
    case transferSkipsBufferedEvents
}
