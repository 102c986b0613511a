import SystemPackage
internal import CCorosync

/// Follows corosync's quorum (libquorum): whether this node's partition is quorate.
/// It decides nothing; the caller polls ``fd`` and calls ``dispatch()``.
///
/// Not thread-safe: one thread (the event loop) uses it.
public final class QuorumMonitor {
    /// The quorate flag as of the last ``dispatch()`` (initially from `quorum_getquorate`).
    public private(set) var isQuorate: Bool
    /// Node ids in the quorum's view of the membership as of the last notification (empty until the
    /// first one, which tracking with CS_TRACK_CURRENT asks for at once).
    public private(set) var nodes: Set<UInt32> = []
    /// The descriptor to poll for readability (`quorum_fd_get`). Owned by the handle.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    private let fd: Int32

    private let handle: quorum_handle_t
    private let sink: QuorumSink
    private var isClosed = false

    /// Connects to the local corosync and starts tracking changes (`quorum_trackstart`, CS_TRACK_CHANGES).
    /// `patience` bounds the retries of `CS_ERR_TRY_AGAIN` (see ``RetryPatience``).
    public init(patience: RetryPatience = .tool) throws(CorosyncError) {
        var callbacks = quorum_callbacks_t(quorum_notify_fn: quorumNotify)
        var handle = quorum_handle_t()
        var quorumType: UInt32 = 0
        var backoff = patience.backoff()
        try checkCS(backoff.retrying { quorum_initialize(&handle, &callbacks, &quorumType) }, "quorum_initialize")
        let sink = QuorumSink()
        do throws(CorosyncError) {
            try checkCS(quorum_context_set(handle, Unmanaged.passUnretained(sink).toOpaque()), "quorum_context_set")
            var descriptor: Int32 = -1
            try checkCS(quorum_fd_get(handle, &descriptor), "quorum_fd_get")
            // Track first, then read: a change after the read is then always reported by a later dispatch.
            try checkCS(quorum_trackstart(handle, UInt32(CS_TRACK_CURRENT | CS_TRACK_CHANGES)), "quorum_trackstart")
            var quorate: Int32 = 0
            try checkCS(quorum_getquorate(handle, &quorate), "quorum_getquorate")
            fd = descriptor
            isQuorate = quorate != 0
        } catch {
            quorum_finalize(handle)
            throw error
        }
        self.handle = handle
        self.sink = sink
        _ = quorumType
    }

    deinit { close() }

    /// Runs every pending notification (`quorum_dispatch`, CS_DISPATCH_ALL) and returns the current flag.
    /// Does not block. Throws when the connection to corosync is lost.
    @discardableResult
    public func dispatch() throws(CorosyncError) -> Bool {
        sink.quorate = nil
        sink.nodes = nil
        try checkCS(quorum_dispatch(handle, CS_DISPATCH_ALL), "quorum_dispatch")
        if let quorate = sink.quorate { isQuorate = quorate }
        if let nodes = sink.nodes { self.nodes = nodes }
        return isQuorate
    }

    /// Disconnects (`quorum_finalize`) once.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        quorum_trackstop(handle)
        quorum_finalize(handle)
    }
}

/// The last quorate flag a notification reported during `quorum_dispatch`.
final class QuorumSink {
    var quorate: Bool?
    var nodes: Set<UInt32>?
}

private let quorumNotify: quorum_notification_fn_t = { handle, quorate, _, count, list in
    var context: UnsafeRawPointer?
    guard quorum_context_get(handle, &context) == CS_OK, let context else { return }
    let sink = Unmanaged<QuorumSink>.fromOpaque(context).takeUnretainedValue()
    sink.quorate = quorate != 0
    var nodes = Set<UInt32>()
    if let list { for i in 0 ..< Int(count) { nodes.insert(list[i]) } }
    sink.nodes = nodes
}
