import Logging
import MirrorLogAdapters
import MirrorLogCore

/// Runs one kernel message through the codec and the engine, carrying out the engine's device actions
/// with the block-device adapter, and produces the reply bytes. Owns the open log devices.
final class RequestProcessor {
    private(set) var engine = LogEngine()
    private var devices: [UInt64: BlockDevice] = [:]
    private let runtimeDirectory: String
    private let logger: Logger
    private let debug: Bool
    let statistics = RequestStatistics()
    /// Logs whose kernel recovery must be restarted once their reply is sent (see `EngineOutput`).
    var recoveryRestarts: [String] = []
    /// The cluster layer: clustered logs go there, and their replies come back asynchronously.
    var cluster: ClusterShell?

    init(runtimeDirectory: String, logger: Logger, debug: Bool) {
        self.runtimeDirectory = runtimeDirectory
        self.logger = logger
        self.debug = debug
    }

    /// Handles one received datagram. Returns true if `reply` holds bytes to send.
    func process(_ datagram: ArraySlice<UInt8>, reply: inout [UInt8], portID: UInt32) -> Bool {
        let frame: ULogFrame
        do {
            frame = try WireDecoder.decodeFrame(datagram)
        } catch {
            statistics.dropped += 1
            logger.warning("dropped a malformed kernel message (\(datagram.count) bytes): \(error)")
            return false
        }
        let request: KernelRequest
        do {
            request = try WireDecoder.decodeRequest(frame)
        } catch {
            statistics.invalid += 1
            var log = logger
            log[metadataKey: "log"] = "\(shortUUID(frame.header.uuid))"
            log.error("invalid request (seq \(frame.header.seq)): \(error); answering -EINVAL")
            WireEncoder.encodeReply(to: frame.header, .failure(.invalidArgument), netlinkPortID: portID, into: &reply)
            return true
        }
        statistics.count(request.type)
        if let cluster, cluster.claims(request) {
            if debug {
                logger.debug("\(request.type) seq=\(request.header.seq) -> cluster", metadata: ["log": "\(shortUUID(request.header.uuid))"])
            }
            cluster.handleKernel(request)
            return false
        }
        let answer = run(request)
        if debug {
            logger.debug("\(request.type) seq=\(request.header.seq) -> error=\(answer.error) \(answer.payload)", metadata: ["log": "\(shortUUID(request.header.uuid))"])
        }
        if answer.error != 0 { statistics.failed += 1 }
        WireEncoder.encodeReply(to: request.header, answer, netlinkPortID: portID, into: &reply)
        return true
    }

    /// Drives the engine until it produces a reply.
    func run(_ request: KernelRequest) -> Reply {
        var output = engine.handle(request)
        // Each request needs at most: open, or read then write, or write. Bound the loop anyway.
        for _ in 0 ..< 8 {
            for notice in output.notices { logger.report(notice) }
            if let uuid = output.restartRecoveryOf { recoveryRestarts.append(uuid) }
            switch output.action {
            case let .reply(reply):
                return reply
            case let .openDevice(luid, spec):
                do {
                    let device = try BlockDevice(opening: spec, privateNodeDirectory: runtimeDirectory)
                    devices[luid] = device
                    output = engine.completeOpen(luid: luid, .success(device.attachment))
                } catch {
                    output = engine.completeOpen(luid: luid, .failure(error))
                }
            case let .readDevice(luid, byteCount):
                guard let device = devices[luid] else {
                    output = engine.completeRead(luid: luid, .failure(DeviceIOError(errno: 19, operation: "read: log device not open")))
                    continue
                }
                output = engine.completeRead(luid: luid, device.read(byteCount: byteCount))
            case let .writeDevice(luid, writes):
                guard let device = devices[luid] else {
                    output = engine.completeWrite(luid: luid, .failure(DeviceIOError(errno: 19, operation: "write: log device not open")))
                    continue
                }
                statistics.diskWrites += writes.count
                output = engine.completeWrite(luid: luid, device.write(writes))
            case let .closeDevice(luid, then):
                devices.removeValue(forKey: luid)
                return then
            }
        }
        logger.critical("engine did not settle on a reply for \(request.type); answering -EIO")
        return .failure(.ioError)
    }

    /// Writes every dirty bitmap block of every disk log (before a forced exit).
    func persistAll() {
        for (luid, log) in engine.logs where log.hasDirtyBlocks {
            guard let device = devices[luid] else { continue }
            if case let .failure(error) = device.write(log.pendingDiskWrites()) {
                logger.error("could not persist log state before exit: \(error)", metadata: ["log": "\(shortUUID(log.uuid))"])
            }
        }
    }

}

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
