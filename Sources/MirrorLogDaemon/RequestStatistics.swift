import MirrorLogCore

/// Counters of what the daemon saw, for dumps.
final class RequestStatistics {
    var byType = [Int](repeating: 0, count: 18)
    /// Messages dropped: malformed framing or a sender other than the kernel.
    var dropped = 0
    /// Framed but invalid requests (answered -EINVAL).
    var invalid = 0
    /// Requests answered with an error.
    var failed = 0
    var diskWrites = 0

    func count(_ type: RequestType) { byType[Int(type.rawValue)] += 1 }

    var summary: String {
        let counts = RequestType.allCases.compactMap { type in byType[Int(type.rawValue)] > 0 ? "\(type)=\(byType[Int(type.rawValue)])" : nil }
        return "requests: \(counts.joined(separator: " ")); dropped=\(dropped) invalid=\(invalid) failed=\(failed) disk_writes=\(diskWrites)"
    }
}
