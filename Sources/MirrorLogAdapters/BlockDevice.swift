internal import CMirrorLogSys
import MirrorLogCore
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An open log device, read and written with O_DIRECT through block-aligned buffers.
public final class BlockDevice {
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    private let fd: Int32
    public let attachment: DeviceAttachment
    /// The path that was opened (for messages).
    public let path: String

    /// Opens `spec`: an absolute path, or `major:minor` of any block device (looked up in sysfs, or
    /// reached through a private device node if /dev has none).
    public init(opening spec: LogDeviceSpec, privateNodeDirectory: String) throws(DeviceIOError) {
        let path: String
        switch spec {
        case let .path(p): path = p
        case let .number(major, minor): path = try Self.nodePath(major: major, minor: minor, privateNodeDirectory: privateNodeDirectory)
        }
        let fd = mlsys_open_direct(path)
        guard fd >= 0 else { throw DeviceIOError(errno: -fd, operation: "open \(path)") }
        var major: UInt32 = 0, minor: UInt32 = 0, isBlock: Int32 = 0
        var size: UInt64 = 0, blockSize: Int32 = 0
        var r = mlsys_device_number(fd, &major, &minor, &isBlock)
        if r == 0 { r = mlsys_block_geometry(fd, &size, &blockSize) }
        guard r == 0 else {
            close(fd)
            throw DeviceIOError(errno: -r, operation: "inspect \(path)")
        }
        guard isBlock != 0 else {
            close(fd)
            throw DeviceIOError(errno: ENOTBLK, operation: "open \(path) (not a block device)")
        }
        if case let .number(wantMajor, wantMinor) = spec, wantMajor != major || wantMinor != minor {
            close(fd)
            throw DeviceIOError(errno: ENODEV, operation: "open \(path) (it is \(major):\(minor), not \(wantMajor):\(wantMinor))")
        }
        self.fd = fd
        self.path = path
        self.attachment = DeviceAttachment(major: major, minor: minor, blockSize: max(512, Int(blockSize)), sizeBytes: size)
    }

    deinit { close(fd) }

    /// Reads `byteCount` bytes (rounded up to whole blocks) from offset 0.
    public func read(byteCount: Int) -> Result<[UInt8], DeviceIOError> {
        let block = attachment.blockSize
        let length = (byteCount + block - 1) / block * block
        guard let buffer = mlsys_aligned_alloc(max(block, 4096), length) else {
            return .failure(DeviceIOError(errno: ENOMEM, operation: "read \(path)"))
        }
        defer { mlsys_aligned_free(buffer) }
        var done = 0
        while done < length {
            let n = pread(fd, buffer + done, length - done, off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                return .failure(DeviceIOError(errno: errno, operation: "read \(length) bytes at 0 from \(path)"))
            }
            if n == 0 { return .failure(DeviceIOError(errno: EIO, operation: "read \(path): short read at \(done)")) }
            done += n
        }
        let bytes = [UInt8](UnsafeRawBufferPointer(start: buffer, count: byteCount))
        return .success(bytes)
    }

    /// Writes each block run and returns when it is on the device (O_DIRECT | O_SYNC).
    public func write(_ writes: [DiskWrite]) -> Result<Void, DeviceIOError> {
        for write in writes {
            let length = write.bytes.count
            guard let buffer = mlsys_aligned_alloc(max(attachment.blockSize, 4096), length) else {
                return .failure(DeviceIOError(errno: ENOMEM, operation: "write \(path)"))
            }
            defer { mlsys_aligned_free(buffer) }
            write.bytes.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: length) }
            var done = 0
            while done < length {
                let n = pwrite(fd, buffer + done, length - done, off_t(write.offset) + off_t(done))
                if n < 0 {
                    if errno == EINTR { continue }
                    return .failure(DeviceIOError(errno: errno, operation: "write \(length) bytes at \(write.offset) to \(path)"))
                }
                if n == 0 { return .failure(DeviceIOError(errno: EIO, operation: "write \(path): short write")) }
                done += n
            }
        }
        return .success(())
    }

    /// A path for block device `major:minor`: /dev/<name> from sysfs when it exists and matches,
    /// otherwise a node made in `privateNodeDirectory`.
    static func nodePath(major: UInt32, minor: UInt32, privateNodeDirectory: String) throws(DeviceIOError) -> String {
        let sysfs = "/sys/dev/block/\(major):\(minor)/uevent"
        guard let uevent = readSmallFile(sysfs) else {
            throw DeviceIOError(errno: ENODEV, operation: "find block device \(major):\(minor) (no \(sysfs))")
        }
        for line in uevent.split(separator: "\n") where line.hasPrefix("DEVNAME=") {
            let candidate = "/dev/" + line.dropFirst("DEVNAME=".count)
            var st = stat()
            if stat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFBLK, st.st_rdev == mlsys_makedev(major, minor) {
                return candidate
            }
        }
        mkdir(privateNodeDirectory, 0o700)
        let node = "\(privateNodeDirectory)/\(major):\(minor)"
        unlink(node)
        guard mknod(node, S_IFBLK | 0o600, dev_t(mlsys_makedev(major, minor))) == 0 else {
            throw DeviceIOError(errno: errno, operation: "mknod \(node) for \(major):\(minor)")
        }
        return node
    }
}

/// Reads a small text file (sysfs, proc), or nil.
func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
        if n <= 0 { break }
        bytes.append(contentsOf: chunk[0 ..< n])
        if bytes.count > 1 << 20 { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
