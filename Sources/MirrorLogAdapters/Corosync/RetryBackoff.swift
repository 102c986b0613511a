internal import CCorosync

#if canImport(Glibc)
import Glibc
#endif

/// A bounded exponential backoff for corosync's `CS_ERR_TRY_AGAIN`: sleeps `initial`, doubling up to `cap`,
/// until `budget` (all in microseconds) would be exceeded.
struct RetryBackoff {
    private var delay: UInt32
    private let cap: UInt32
    private var remaining: UInt32

    init(initialMicroseconds: UInt32, capMicroseconds: UInt32, budgetMicroseconds: UInt32) {
        delay = initialMicroseconds
        cap = capMicroseconds
        remaining = budgetMicroseconds
    }

    /// For join, leave and initialize: 1 ms doubling to 100 ms, about 1 s in all.
    static func control() -> RetryBackoff {
        RetryBackoff(initialMicroseconds: 1_000, capMicroseconds: 100_000, budgetMicroseconds: 1_000_000)
    }

    /// For connecting from the event loop: 500 µs doubling to 2 ms, about 5 ms in all.
    static func eventLoop() -> RetryBackoff {
        RetryBackoff(initialMicroseconds: 500, capMicroseconds: 2_000, budgetMicroseconds: 5_000)
    }

    /// For a multicast on the event loop: 100 µs doubling to 5 ms, about 20 ms in all.
    static func multicast() -> RetryBackoff {
        RetryBackoff(initialMicroseconds: 100, capMicroseconds: 5_000, budgetMicroseconds: 20_000)
    }

    /// Sleeps for the next step and returns true, or returns false (without sleeping) when the budget is spent.
    mutating func wait() -> Bool {
        guard remaining > 0 else { return false }
        let step = min(delay, remaining)
        remaining -= step
        delay = min(delay * 2, cap)
        var request = timespec(tv_sec: Int(step / 1_000_000), tv_nsec: Int(step % 1_000_000) * 1_000)
        var left = timespec()
        while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
        return true
    }

    /// Calls `body` until it returns something other than `CS_ERR_TRY_AGAIN` or the budget is spent;
    /// returns the last result.
    mutating func retrying(_ body: () -> cs_error_t) -> cs_error_t {
        while true {
            let result = body()
            if result != CS_ERR_TRY_AGAIN || !wait() { return result }
        }
    }
}

/// How long a connecting call may sleep on `CS_ERR_TRY_AGAIN` before it gives up.
public enum RetryPatience: Sendable {
    /// A command-line tool: up to about 1 s.
    case tool
    /// The daemon's event loop, which must keep answering the kernel: a few milliseconds; the caller
    /// tries again later.
    case eventLoop

    func backoff() -> RetryBackoff {
        switch self {
        case .tool: .control()
        case .eventLoop: .eventLoop()
        }
    }
}
