/// What the simulation can break, each with its weight: among the faults possible at a step, one is
/// drawn with probability proportional to its weight.
public enum SimulationFault: String, Sendable, CaseIterable {
    /// A daemon dies (its node and kernel stay up).
    case crashDaemon = "crash daemon"
    /// A node without a daemon starts one.
    case restartDaemon = "restart daemon"
    /// A whole node dies (fencing it may fail until the faults stop).
    case crashNode = "crash node"
    /// A node that is down boots again.
    case powerOn = "power on"
    /// A quorate side fences a node it lists but does not have.
    case fence
    /// A running mirror is suspended and destroyed.
    case cleanLeave = "clean leave"
    /// A running mirror is suspended.
    case suspend
    /// The next write or resync copy of a running mirror fails on a leg.
    case legFailure = "leg failure"
    /// Heavy write traffic for a while.
    case burst
    /// A node activates its mirror again.
    case recreate
    /// A suspended mirror resumes.
    case resume
    /// The one component splits in two.
    case partition
    /// The two components merge.
    case merge
    /// The log device starts or stops failing writes.
    case device
    /// A daemon's multicasts start or stop being refused with CS_ERR_TRY_AGAIN.
    case flowControl = "flow control"

    /// The weight of the fault when it is possible.
    public var weight: Int {
        switch self {
        case .crashDaemon: 10
        case .restartDaemon: 15
        case .crashNode: 6
        case .powerOn: 10
        case .fence: 14
        case .cleanLeave: 4
        case .suspend: 6
        case .legFailure: 4
        case .burst: 5
        case .recreate: 10
        case .resume: 12
        case .partition: 5
        case .merge: 8
        case .device: 4
        case .flowControl: 8
        }
    }
}
