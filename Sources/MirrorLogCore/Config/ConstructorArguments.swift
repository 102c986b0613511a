/// The parsed CTR string: `<length> <type> [<log device>] <region size> [sync|nosync] [block_on_error]`.
public struct ConstructorArguments: Sendable, Equatable {
    /// Target length in 512-byte sectors.
    public var lengthSectors: UInt64
    public var logType: LogType
    /// The log device, for `disk` and `clustered-disk`.
    public var logDevice: LogDeviceSpec?
    /// Region size in sectors: a power of two, at least 2, and not larger than the target (as the
    /// kernel's own logs require).
    public var regionSize: UInt32
    public var syncMode: SyncMode
    public var blockOnError: Bool

    /// `ceil(length / region_size)`, as the kernel computes it.
    public var regionCount: UInt64 {
        let size = UInt64(regionSize)
        return lengthSectors / size + (lengthSectors % size == 0 ? 0 : 1)
    }

    /// The largest region count accepted: bitmaps of 32 MiB each.
    public static let maxRegionCount: UInt64 = 1 << 28

    public init(lengthSectors: UInt64, logType: LogType, logDevice: LogDeviceSpec?, regionSize: UInt32, syncMode: SyncMode, blockOnError: Bool) {
        self.lengthSectors = lengthSectors
        self.logType = logType
        self.logDevice = logDevice
        self.regionSize = regionSize
        self.syncMode = syncMode
        self.blockOnError = blockOnError
    }

    /// Parses the kernel's CTR string, with a specific error for every bad argument.
    public static func parse(_ text: String) throws(ConstructorError) -> ConstructorArguments {
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let lengthWord = words.first else { throw .empty }
        guard let length = UInt64(lengthWord) else { throw .badLength(lengthWord) }
        guard length > 0 else { throw .badLength(lengthWord) }
        guard words.count >= 2 else { throw .missingLogType }
        guard let type = LogType(rawValue: words[1]) else { throw .unknownLogType(words[1]) }

        var rest = words.dropFirst(2)
        var device: LogDeviceSpec?
        if type.hasLogDevice {
            guard let deviceWord = rest.popFirst() else { throw .missingLogDevice(type) }
            device = try parseDevice(deviceWord)
        }
        guard let regionWord = rest.popFirst() else { throw .missingRegionSize }
        guard let region = UInt32(regionWord) else { throw .badRegionSize(regionWord, reason: "not a number of sectors") }
        guard region >= 2 else { throw .badRegionSize(regionWord, reason: "must be at least 2 sectors") }
        guard region & (region - 1) == 0 else { throw .badRegionSize(regionWord, reason: "must be a power of two") }
        // The kernel's own logs refuse it too (`_check_region_size`, drivers/md/dm-log.c).
        guard UInt64(region) <= length else {
            throw .badRegionSize(regionWord, reason: "larger than the device (\(length) sectors)")
        }

        var sync = SyncMode.default
        var blockOnError = false
        for word in rest {
            switch word {
            case "sync", "nosync":
                guard sync == .default else { throw .conflictingArgument(word) }
                sync = word == "sync" ? .forceSync : .noSync
            case "block_on_error":
                guard !blockOnError else { throw .conflictingArgument(word) }
                blockOnError = true
            default:
                throw .unknownArgument(word)
            }
        }
        let arguments = ConstructorArguments(lengthSectors: length, logType: type, logDevice: device, regionSize: region, syncMode: sync, blockOnError: blockOnError)
        guard arguments.regionCount <= maxRegionCount else { throw .tooManyRegions(arguments.regionCount) }
        return arguments
    }

    static func parseDevice(_ word: String) throws(ConstructorError) -> LogDeviceSpec {
        if word.hasPrefix("/") { return .path(word) }
        let parts = word.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 2, let major = UInt32(parts[0]), let minor = UInt32(parts[1]) {
            return .number(major: major, minor: minor)
        }
        throw .badLogDevice(word)
    }
}

/// Why a CTR string was refused. Each case names the argument at fault.
public enum ConstructorError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case badLength(String)
    case missingLogType
    case unknownLogType(String)
    case missingLogDevice(LogType)
    case badLogDevice(String)
    case missingRegionSize
    case badRegionSize(String, reason: String)
    case unknownArgument(String)
    case conflictingArgument(String)
    case tooManyRegions(UInt64)

    public var description: String {
        switch self {
        case .empty: "empty constructor string"
        case let .badLength(w): "bad target length '\(w)': expected a positive number of sectors"
        case .missingLogType: "missing log type (expected core, disk, clustered-core or clustered-disk)"
        case let .unknownLogType(w): "unknown log type '\(w)' (expected core, disk, clustered-core or clustered-disk)"
        case let .missingLogDevice(t): "log type \(t) needs a log device argument"
        case let .badLogDevice(w): "bad log device '\(w)': expected an absolute path or major:minor"
        case .missingRegionSize: "missing region size"
        case let .badRegionSize(w, reason): "bad region size '\(w)': \(reason)"
        case let .unknownArgument(w): "unknown or extra argument '\(w)' (expected sync, nosync or block_on_error)"
        case let .conflictingArgument(w): "argument '\(w)' conflicts with an earlier one"
        case let .tooManyRegions(n): "\(n) regions is more than the \(ConstructorArguments.maxRegionCount) supported; use a larger region size"
        }
    }
}
