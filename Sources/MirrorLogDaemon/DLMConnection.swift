import Logging
import MirrorLogAdapters
import MirrorLogCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The DLM as the fencing barrier uses it (``FencingBarrier``): lockspace `mirrorlogd`, one lock per
/// node named `node-<nodeid>`. Carries out ``DLMRequest``s and turns lock completions into
/// ``DLMEvent``s; decides nothing.
///
/// - This node's lock: EX and persistent. It is first asked for as an orphan (a previous daemon of
///   this node left it behind when it died): that completes at once, with no AST; ENOENT means
///   there is none, and it is asked for plainly (granted by an AST).
/// - A watched node's lock: PR, not persistent, queued behind the holder's EX.
final class DLMConnection {
    static let lockspaceName = "mirrorlogd"

    private let nodeID: UInt32
    private let logger: Logger
    private var join: DLMLockspaceJoin?
    private var lockspace: DLMLockspace?
    /// This node's lock is wanted, and how far its request is.
    private var own: OwnRequest = .notWanted

    private enum OwnRequest {
        case notWanted
        case waitingForLockspace
        case adopting
        case locking
        case held
    }

    init(nodeID: UInt32, logger: Logger) {
        self.nodeID = nodeID
        self.logger = logger
    }

    /// The descriptor to poll: the join's report pipe, then the lockspace's.
    var fileDescriptor: FileDescriptor? { lockspace?.fileDescriptor ?? join?.fileDescriptor }

    static func lockName(ofNode node: UInt32) -> String { "node-\(node)" }

    /// Carries out a request; an event may come back at once (the DLM cannot be used).
    func execute(_ request: DLMRequest) -> [DLMEvent] {
        switch request {
        case .acquireNodeLock:
            guard case .notWanted = own else { return [] }
            own = .waitingForLockspace
            if lockspace != nil { return lockOwn(adopt: true) }
            guard join == nil else { return [] }
            do {
                join = try DLMLockspaceJoin(name: Self.lockspaceName)
            } catch {
                own = .notWanted
                return [.unavailable("cannot start joining lockspace \(Self.lockspaceName): \(error)")]
            }
            return []
        case let .watchNode(node):
            do {
                try lockspace?.lock(Self.lockName(ofNode: node), mode: .protectedRead, persistent: false)
            } catch {
                logger.error("cannot queue a request on the DLM lock of node \(node): \(error); recovery of its failed members waits")
            }
            return []
        case let .releaseNode(node):
            do {
                try lockspace?.unlock(Self.lockName(ofNode: node))
            } catch {
                logger.warning("cannot release the DLM lock of node \(node): \(error); its next daemon waits until this one exits")
            }
            return []
        }
    }

    /// The polled descriptor is readable.
    func readable() -> [DLMEvent] {
        if let join, lockspace == nil {
            guard let outcome = join.takeOutcome() else { return [] }
            self.join = nil
            switch outcome {
            case let .success(opened):
                lockspace = opened
                logger.info("joined DLM lockspace \(Self.lockspaceName)")
                return lockOwn(adopt: true)
            case let .failure(error):
                own = .notWanted
                return [.unavailable(Self.describeJoinFailure(error))]
            }
        }
        guard let lockspace else { return [] }
        lockspace.dispatch()
        var events: [DLMEvent] = []
        let ownName = Self.lockName(ofNode: nodeID)
        for completion in lockspace.takeCompletions() {
            switch completion {
            case let .granted(name) where name == ownName:
                own = .held
                events.append(.acquired(adoptedOrphan: false))
            case let .failed(name, status) where name == ownName:
                own = .notWanted
                events.append(.unavailable("the DLM refused this node's lock \(ownName) (status \(status))"))
            case let .granted(name):
                if let node = Self.node(ofLock: name) { events.append(.granted(node: node)) }
            case let .failed(name, status):
                logger.error("the DLM refused the request on \(name) (status \(status)); recovery of that node's failed members waits")
            case .released:
                break
            }
        }
        return events
    }

    /// At a clean exit: give this node's lock back and leave the lockspace, so no lock stays behind.
    func close() {
        guard let lockspace else { return }
        if case .held = own {
            try? lockspace.unlock(Self.lockName(ofNode: nodeID))
            // The unlock completes through the lockspace fd; give it a bounded moment.
            for _ in 0 ..< 50 {
                var poll = Poller([lockspace.fileDescriptor])
                guard !poll.wait(timeoutMilliseconds: 20).isEmpty else { continue }
                lockspace.dispatch()
                if lockspace.takeCompletions().contains(.released(name: Self.lockName(ofNode: nodeID))) { break }
            }
        }
        lockspace.release()
        self.lockspace = nil
    }

    private func lockOwn(adopt: Bool) -> [DLMEvent] {
        guard let lockspace else { return [] }
        own = adopt ? .adopting : .locking
        do {
            switch try lockspace.lock(Self.lockName(ofNode: nodeID), mode: .exclusive, persistent: true, adoptOrphan: adopt) {
            case .adopted:
                // An adoption completes at once, and the DLM sends no completion for it.
                own = .held
                return [.acquired(adoptedOrphan: true)]
            case .requested:
                return []
            }
        } catch {
            // No orphan: the previous daemon of this node (if any) let go cleanly.
            if adopt, error == .noSuchFileOrDirectory { return lockOwn(adopt: false) }
            own = .notWanted
            return [.unavailable("cannot request this node's DLM lock \(Self.lockName(ofNode: nodeID)): \(error)")]
        }
    }

    private static func node(ofLock name: String) -> UInt32? {
        guard name.hasPrefix("node-") else { return nil }
        return UInt32(name.dropFirst(5))
    }

    private static func describeJoinFailure(_ error: Errno) -> String {
        switch error {
        case .noSuchFileOrDirectory:
            "cannot join lockspace \(lockspaceName): no DLM control device (is the dlm module loaded, and /dev/misc/dlm-control present?)"
        case .permissionDenied, .notPermitted:
            "cannot join lockspace \(lockspaceName): \(error) (the DLM needs root)"
        default:
            "cannot join lockspace \(lockspaceName): \(error) (is dlm_controld running?)"
        }
    }
}
