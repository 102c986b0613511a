/// Something the operator should read in the daemon's log. The core returns notices as values; the
/// shell writes them.
public struct Notice: Sendable, Equatable, CustomStringConvertible {
    public enum Level: Sendable, Equatable { case debug, info, warning, error }

    /// What happened, for a reader that acts on it (the simulation, later the event stream); the
    /// message is for people.
    public enum Event: Sendable, Equatable {
        /// This member founded a clustered log's replicated state from scratch.
        case foundedState
    }

    public var level: Level
    /// The log the notice is about, if any.
    public var uuid: String?
    public var message: String
    public var event: Event?

    public init(_ level: Level, uuid: String?, _ message: String, event: Event? = nil) {
        self.level = level
        self.uuid = uuid
        self.message = message
        self.event = event
    }

    public var description: String { message }
}
