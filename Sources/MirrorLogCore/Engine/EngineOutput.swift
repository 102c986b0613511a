/// What the shell must do next for the request being handled.
public enum EngineAction: Sendable, Equatable {
    /// Send this reply to the kernel; the request is done.
    case reply(Reply)
    /// Open the log device named in the table, then call ``LogEngine/completeOpen(luid:_:)``.
    case openDevice(luid: UInt64, LogDeviceSpec)
    /// Read `byteCount` bytes from offset 0 of the log device, then call ``LogEngine/completeRead(luid:_:)``.
    case readDevice(luid: UInt64, byteCount: Int)
    /// Write these blocks to the log device (O_DIRECT), then call ``LogEngine/completeWrite(luid:_:)``.
    case writeDevice(luid: UInt64, [DiskWrite])
    /// Close the log device of a destroyed log; no completion is needed. A reply follows.
    case closeDevice(luid: UInt64, then: Reply)
}

/// One step of the engine: an action plus notices for the operator's log.
public struct EngineOutput: Sendable, Equatable {
    public var action: EngineAction
    public var notices: [Notice]
    /// After sending the reply, restart the kernel's recovery of the log with this uuid by suspending
    /// and resuming its dm device (see ``MirrorLog/recoveryRestartPending``).
    public var restartRecoveryOf: String?

    public init(_ action: EngineAction, notices: [Notice] = [], restartRecoveryOf: String? = nil) {
        self.action = action
        self.notices = notices
        self.restartRecoveryOf = restartRecoveryOf
    }

    static func reply(_ reply: Reply, _ notices: [Notice] = []) -> EngineOutput {
        EngineOutput(.reply(reply), notices: notices)
    }
}
