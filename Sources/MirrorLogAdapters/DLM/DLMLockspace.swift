internal import CDLM
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A DLM lockspace opened through `libdlm_lt` (no library threads): lock requests are asynchronous,
/// and their completions (ASTs) are dispatched by the event loop when ``fileDescriptor`` is readable
/// (``dispatch()``), then taken as values (``takeCompletions()``). Decides nothing.
///
/// Each request's lock status block lives at a fixed address (allocated here) until its final
/// completion: the kernel writes into it.
public final class DLMLockspace {
    /// Lock modes used here (`LKM_*`).
    public enum Mode: UInt32, Sendable {
        case protectedRead = 3
        case exclusive = 5
    }

    /// How a request ended.
    public enum Completion: Sendable, Equatable {
        /// The lock named `name` was granted.
        case granted(name: String)
        /// The request on `name` failed with this status (an errno value, or a DLM code).
        case failed(name: String, status: Int32)
        /// The lock named `name` was released.
        case released(name: String)
    }

    /// Poll it; when readable call ``dispatch()``.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    public let name: String
    private let handle: UnsafeMutableRawPointer
    private let fd: Int32
    private var requests: [String: LockRequest] = [:]
    fileprivate var completions: [Completion] = []
    /// The handle was freed by ``release()``.
    private var released = false

    /// Opens lockspace `name`, which ``DLMLockspaceJoin`` created or joined.
    init(name: String, handle: UnsafeMutableRawPointer) throws(Errno) {
        self.name = name
        self.handle = handle
        let fd = dlm_ls_get_fd(handle)
        guard fd >= 0 else { throw Errno(rawValue: errno) }
        self.fd = fd
    }

    deinit {
        for request in requests.values { request.abandon() }
        if !released { dlm_close_lockspace(handle) }
    }

    /// How a lock request started.
    public enum Start: Sendable, Equatable {
        /// Queued or granted later: a ``Completion`` follows.
        case requested
        /// An orphan was adopted: held now, and the DLM sends no completion for it.
        case adopted
    }

    /// Asks for lock `name` in `mode`. `persistent`: the lock outlives this process as an orphan.
    /// `adoptOrphan`: take over an orphan of that name and mode; throws ENOENT if there is none, and
    /// EAGAIN if the orphan has another mode.
    @discardableResult
    public func lock(_ name: String, mode: Mode, persistent: Bool, adoptOrphan: Bool = false) throws(Errno) -> Start {
        guard requests[name] == nil else { throw .fileExists }
        var flags = UInt32(0)
        if persistent { flags |= UInt32(LKF_PERSISTENT) }
        if adoptOrphan { flags |= UInt32(LKF_ORPHAN) }
        let request = LockRequest(name: name, lockspace: self)
        let bytes = Array(name.utf8)
        let result = bytes.withUnsafeBytes { raw in
            dlm_ls_lock(handle, mode.rawValue, request.statusBlock, flags, raw.baseAddress, UInt32(raw.count), 0,
                        lockCompleted, Unmanaged.passUnretained(request).toOpaque(), nil, nil)
        }
        guard result == 0 else {
            let error = Errno(rawValue: errno)
            request.abandon()
            throw error
        }
        requests[name] = request
        return adoptOrphan ? .adopted : .requested
    }

    /// Releases (or cancels) lock `name`; ``Completion/released(name:)`` follows.
    public func unlock(_ name: String) throws(Errno) {
        guard let request = requests[name] else { throw .noSuchFileOrDirectory }
        request.unlocking = true
        let result = dlm_ls_unlock(handle, request.statusBlock.pointee.sb_lkid, 0, request.statusBlock,
                                   Unmanaged.passUnretained(request).toOpaque())
        guard result == 0 else {
            request.unlocking = false
            throw Errno(rawValue: errno)
        }
    }

    /// Runs the completions the kernel has ready (call when the fd is readable).
    public func dispatch() {
        _ = dlm_dispatch(fd)
    }

    /// The completions since the last call, in order.
    public func takeCompletions() -> [Completion] {
        defer { completions.removeAll() }
        return completions
    }

    /// Leaves the lockspace and frees the handle (at a clean exit, after every lock was released:
    /// libdlm closes the handle first, which would leave a persistent lock as an orphan). The kernel
    /// removes the lockspace once every process that created it released it.
    public func release() {
        guard !released else { return }
        released = true
        _ = dlm_release_lockspace(name, handle, 0)
    }

    fileprivate func complete(_ request: LockRequest) {
        let status = request.statusBlock.pointee.sb_status
        // DLM_EUNLOCK and ECANCEL end a request after dlm_ls_unlock.
        if request.unlocking || status == 0x10002 || status == 0x10001 {
            requests.removeValue(forKey: request.name)
            completions.append(.released(name: request.name))
            request.abandon()
        } else if status == 0 {
            completions.append(.granted(name: request.name))
        } else {
            requests.removeValue(forKey: request.name)
            completions.append(.failed(name: request.name, status: status))
            request.abandon()
        }
    }
}

/// One lock request: its status block at a fixed address, and where its completion goes.
private final class LockRequest {
    let name: String
    let statusBlock: UnsafeMutablePointer<dlm_lksb>
    unowned let lockspace: DLMLockspace
    var unlocking = false
    private var retained: Unmanaged<LockRequest>?

    init(name: String, lockspace: DLMLockspace) {
        self.name = name
        self.lockspace = lockspace
        statusBlock = .allocate(capacity: 1)
        statusBlock.initialize(to: dlm_lksb())
        // The kernel holds the AST argument until the final completion.
        retained = nil
        retained = Unmanaged.passRetained(self)
    }

    /// The request is over: no further completion names it.
    func abandon() {
        retained?.release()
        retained = nil
    }

    deinit { statusBlock.deallocate() }
}

/// The AST: runs inside ``DLMLockspace/dispatch()`` on the event loop's thread.
private func lockCompleted(_ argument: UnsafeMutableRawPointer?) {
    guard let argument else { return }
    let request = Unmanaged<LockRequest>.fromOpaque(argument).takeUnretainedValue()
    request.lockspace.complete(request)
}
