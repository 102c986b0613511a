/// Something the operator should read in the daemon's log. The core returns notices as values; the
/// shell writes them.
public struct Notice: Sendable, Equatable, CustomStringConvertible {
    public enum Level: Sendable, Equatable { case debug, info, warning, error }

    public var level: Level
    /// The log the notice is about, if any.
    public var uuid: String?
    public var message: String

    public init(_ level: Level, uuid: String?, _ message: String) {
        self.level = level
        self.uuid = uuid
        self.message = message
    }

    public var description: String { message }
}
