/// What the shell learned when it opened a log device for a `disk` log.
public struct DeviceAttachment: Sendable, Equatable {
    /// Device number, shown in STATUS_INFO and returned to the kernel.
    public var major: UInt32
    public var minor: UInt32
    /// Logical block size: O_DIRECT writes cover whole blocks.
    public var blockSize: Int
    /// Device size in bytes.
    public var sizeBytes: UInt64

    public init(major: UInt32, minor: UInt32, blockSize: Int, sizeBytes: UInt64) {
        self.major = major
        self.minor = minor
        self.blockSize = blockSize
        self.sizeBytes = sizeBytes
    }

    /// `major:minor`.
    public var deviceNumber: String { "\(major):\(minor)" }
}

/// A failed operation on a log device, as the adapter reports it to the core.
public struct DeviceIOError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Linux errno of the failure (positive).
    public var errno: Int32
    /// What failed, for the operator: "open /dev/foo", "write 4096 bytes at 0", ...
    public var operation: String

    public init(errno: Int32, operation: String) {
        self.errno = errno
        self.operation = operation
    }

    public var description: String { "\(operation): \(KernelErrno(rawValue: errno))" }
}

/// One write of whole blocks to a log device.
public struct DiskWrite: Sendable, Equatable {
    /// Byte offset, a multiple of the block size.
    public var offset: UInt64
    /// Whole blocks.
    public var bytes: [UInt8]

    public init(offset: UInt64, bytes: [UInt8]) {
        self.offset = offset
        self.bytes = bytes
    }
}

/// State of a log's device.
public struct DiskState: Sendable, Equatable {
    public var attachment: DeviceAttachment
    public var format: DiskLogFormat
    /// Blocks whose content changed since the last successful write.
    public var dirtyBlocks: Bitmap
    /// A write failed: STATUS_INFO shows `D` until the next resume.
    public var failed: Bool = false
    /// A clustered log's recovery generation, recorded after the header (0: no record).
    public var recoveryGeneration: UInt64 = 0

    public init(attachment: DeviceAttachment, regionCount: UInt64) {
        self.attachment = attachment
        self.format = DiskLogFormat(regionCount: regionCount, blockSize: attachment.blockSize)
        self.dirtyBlocks = Bitmap(count: UInt64(format.blockCount))
    }
}
