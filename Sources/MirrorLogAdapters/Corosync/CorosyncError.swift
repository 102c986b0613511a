internal import CCorosync

/// A corosync library call that did not return `CS_OK`: the `cs_error_t` code and the call it came from.
public struct CorosyncError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The raw `cs_error_t` value (`CS_ERR_*`).
    public var code: Int32
    /// What was being done, e.g. `"cpg_join mirrorlog-1234"`.
    public var operation: String

    public init(code: Int32, operation: String) {
        self.code = code
        self.operation = operation
    }

    init(_ error: cs_error_t, _ operation: String) {
        self.init(code: Int32(bitPattern: error.rawValue), operation: operation)
    }

    /// `CS_ERR_TRY_AGAIN`: corosync is busy (flow control, a configuration change in progress).
    public static let tryAgain = Int32(bitPattern: CS_ERR_TRY_AGAIN.rawValue)
    /// `CS_ERR_LIBRARY`: the IPC connection to corosync is gone (corosync exited or was killed).
    public static let library = Int32(bitPattern: CS_ERR_LIBRARY.rawValue)
    /// `CS_ERR_BAD_HANDLE`: the handle was finalized or never valid.
    public static let badHandle = Int32(bitPattern: CS_ERR_BAD_HANDLE.rawValue)
    /// `CS_ERR_EXIST`: this process already has a member in the group.
    public static let exist = Int32(bitPattern: CS_ERR_EXIST.rawValue)
    /// `CS_ERR_NOT_EXIST`: leaving a group that was not joined.
    public static let notExist = Int32(bitPattern: CS_ERR_NOT_EXIST.rawValue)
    /// `CS_ERR_NAME_TOO_LONG`: a group name over `CPG_MAX_NAME_LENGTH` bytes.
    public static let nameTooLong = Int32(bitPattern: CS_ERR_NAME_TOO_LONG.rawValue)
    /// `CS_ERR_TOO_BIG`: a message larger than corosync accepts.
    public static let tooBig = Int32(bitPattern: CS_ERR_TOO_BIG.rawValue)

    /// Whether the connection to corosync is lost: the handle is useless and must be closed.
    public var isConnectionLost: Bool { code == Self.library || code == Self.badHandle }

    /// corosync's text for the code (`cs_strerror`).
    public var message: String {
        String(cString: cs_strerror(cs_error_t(rawValue: UInt32(bitPattern: code))))
    }

    public var description: String { "\(operation): \(message) (cs_error \(code))" }
}

/// Throws unless `result` is `CS_OK`.
@inline(__always)
func checkCS(_ result: cs_error_t, _ operation: @autoclosure () -> String) throws(CorosyncError) {
    if result != CS_OK { throw CorosyncError(result, operation()) }
}
