internal import CMirrorLogSys
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Restarts the kernel's recovery of a log: suspends and resumes the dm device whose mirror uses it
/// (only a resume resets the kernel's cached `in_sync_hint`). The suspend and resume send log
/// requests that the event loop must answer, so they run on a background thread; each outcome comes
/// back as a value through ``takeOutcomes()`` once the report pipe (``fd``) is readable.
public final class DeviceMapperControl: Sendable {
    /// Read end of the report pipe: poll it, then call ``takeOutcomes()``.
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    private let fd: Int32
    private let writeFD: Int32
    private let outcomes = Mutex<[RecoveryRestartOutcome]>([])

    public init() throws(Errno) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw Errno(rawValue: errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        for fd in fds { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        fd = fds[0]
        writeFD = fds[1]
    }

    deinit {
        close(fd)
        close(writeFD)
    }

    /// Starts the suspend and resume of the dm device whose mirror uses the log `uuid`.
    public func restartRecovery(ofLog uuid: String) throws(Errno) {
        try DetachedThread.start { [self] in finish(DeviceMapperControl.restart(uuid)) }
    }

    /// What the background threads finished since the last call.
    public func takeOutcomes() -> [RecoveryRestartOutcome] {
        var byte: UInt8 = 0
        while read(fd, &byte, 1) > 0 {}
        return outcomes.withLock { list in
            defer { list.removeAll() }
            return list
        }
    }

    private func finish(_ outcome: RecoveryRestartOutcome) {
        outcomes.withLock { $0.append(outcome) }
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// The restart itself, on the background thread: find the device, suspend it, resume it.
    private static func restart(_ uuid: String) -> RecoveryRestartOutcome {
        let control = open("/dev/mapper/control", O_RDWR | O_CLOEXEC)
        guard control >= 0 else { return .failed(uuid: uuid, .cannotOpenControl(Errno(rawValue: errno))) }
        defer { close(control) }
        var names = [CChar](repeating: 0, count: 1 << 20)
        let count = names.withUnsafeMutableBufferPointer { mlsys_dm_device_names(control, $0.baseAddress, $0.count) }
        guard count >= 0 else { return .failed(uuid: uuid, .cannotListDevices(Errno(rawValue: -count))) }
        var device: String?
        var start = 0
        for _ in 0 ..< Int(count) {
            guard let end = names[start...].firstIndex(of: 0) else { break }
            let name = String(decoding: names[start ..< end].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            start = end + 1
            if mlsys_dm_table_uses_log(control, name, uuid) == 1 {
                device = name
                break
            }
        }
        guard let device else { return .failed(uuid: uuid, .noDeviceUsesLog) }
        let suspended = mlsys_dm_suspend(control, device, 1)
        guard suspended == 0 else { return .failed(uuid: uuid, .suspend(device: device, Errno(rawValue: -suspended))) }
        let resumed = mlsys_dm_suspend(control, device, 0)
        guard resumed == 0 else { return .failed(uuid: uuid, .resume(device: device, Errno(rawValue: -resumed))) }
        return .restarted(uuid: uuid, device: device)
    }
}

/// How a recovery restart ended.
public enum RecoveryRestartOutcome: Sendable, Equatable {
    /// The device was suspended and resumed.
    case restarted(uuid: String, device: String)
    case failed(uuid: String, RecoveryRestartError)
}

/// Why a recovery restart failed.
public enum RecoveryRestartError: Error, Sendable, Equatable, CustomStringConvertible {
    case cannotOpenControl(Errno)
    case cannotListDevices(Errno)
    case noDeviceUsesLog
    case suspend(device: String, Errno)
    /// The device stays suspended.
    case resume(device: String, Errno)

    public var description: String {
        switch self {
        case let .cannotOpenControl(e): "cannot open /dev/mapper/control: \(e)"
        case let .cannotListDevices(e): "cannot list dm devices: \(e)"
        case .noDeviceUsesLog: "no dm device uses this log"
        case let .suspend(device, e): "suspend \(device): \(e)"
        case let .resume(device, e): "resume \(device): \(e) (the device stays suspended)"
        }
    }
}
