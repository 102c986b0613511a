/// The compact image of a ``ReplicatedLog`` sent to joining members: bitmaps run-length encoded,
/// everything else as varints, in a canonical order (so equal states give equal bytes, which the
/// state digest relies on). The log device's number, a local fact, is not included.
public enum ReplicaSnapshot {
    /// Encodes `state`.
    public static func encode(_ state: ReplicatedLog) -> [UInt8] {
        var w = LittleEndianWriter(capacity: 256)
        let log = state.log
        w.varint(log.regionCount)
        w.u32(log.arguments.regionSize)
        BitmapRunLength.encode(log.sync, into: &w)
        BitmapRunLength.encode(log.clean, into: &w)
        let holders = log.marks.holders.filter { $0.regions.firstIndex(of: true, from: 0) < log.regionCount }.sorted { $0.member < $1.member }
        w.varint(UInt64(holders.count))
        for holder in holders {
            w.member(holder.member)
            BitmapRunLength.encode(holder.regions, into: &w)
        }
        let recovering = log.recovering.sorted { $0.key < $1.key }
        w.varint(UInt64(recovering.count))
        for (region, member) in recovering {
            w.varint(region)
            w.member(member)
        }
        w.varint(UInt64(state.members.count))
        for member in state.members {
            w.member(member)
            w.u8(state.synced.contains(member) ? 1 : 0)
            w.varint(state.unsyncedAge[member] ?? 0)
            w.u32(state.slots[member] ?? 0)
            w.u64(state.boots[member] ?? 0)
        }
        w.varint(UInt64(state.failed.count))
        for member in state.failed {
            w.member(member)
            w.u64(state.boots[member] ?? 0)
            w.u8(state.cutOff.contains(member) ? 1 : 0)
        }
        if let suspects = state.suspects {
            w.u8(1)
            BitmapRunLength.encode(suspects, into: &w)
        } else {
            w.u8(0)
        }
        w.u8(state.recoveryPending ? 1 : 0)
        w.varint(state.generation)
        w.varint(UInt64(state.priority.count))
        for region in state.priority { w.varint(region) }
        w.varint(state.flushNumber)
        w.varint(state.ackedFlush)
        w.u8(state.needsDiskLoad ? 1 : 0)
        w.u8(log.disk?.failed ?? false ? 1 : 0)
        w.varint(log.resyncCursor)
        if let writer = state.writer {
            w.u8(1)
            w.member(writer)
        } else {
            w.u8(0)
        }
        // Dirty blocks decide whether a FLUSH waits for the writer, so every member must agree on them.
        if let dirty = log.disk?.dirtyBlocks {
            w.u8(1)
            BitmapRunLength.encode(dirty, into: &w)
        } else {
            w.u8(0)
        }
        return w.bytes
    }

    /// Decodes a snapshot onto `base`, a freshly constructed log of this member (its own device
    /// attachment and arguments). Refuses a snapshot of another geometry.
    public static func decode(_ bytes: ArraySlice<UInt8>, onto base: MirrorLog) throws(ClusterMessageError) -> ReplicatedLog {
        var r = LittleEndianReader(bytes)
        let regionCount = try r.varint()
        let regionSize = try r.u32()
        guard regionCount == base.regionCount, regionSize == base.arguments.regionSize else {
            throw .malformed("snapshot of \(regionCount) regions of \(regionSize) sectors, this log has \(base.regionCount) of \(base.arguments.regionSize)")
        }
        var log = base
        log.sync = try bitmap(&r, regionCount)
        log.syncCount = log.sync.popCount
        log.clean = try bitmap(&r, regionCount)
        log.marks = MarkTable(regionCount: regionCount)
        for _ in 0 ..< (try r.count(minimumElementSize: 9)) {
            let member = try r.member()
            let regions = try bitmap(&r, regionCount)
            var region = regions.firstIndex(of: true, from: 0)
            while region < regionCount {
                log.marks.mark(region, by: member)
                region = regions.firstIndex(of: true, from: region + 1)
            }
        }
        log.recovering = [:]
        for _ in 0 ..< (try r.count(minimumElementSize: 9)) {
            let region = try r.varint()
            guard region < regionCount else { throw .malformed("resync region \(region) out of range") }
            log.recovering[region] = try r.member()
        }
        var state = ReplicatedLog(log: log, founder: .local)
        state.members = []
        state.synced = []
        state.slots = [:]
        for _ in 0 ..< (try r.count(minimumElementSize: 22)) {
            let member = try r.member()
            if try r.u8() == 1 { state.synced.insert(member) }
            let age = try r.varint()
            if age > 0 { state.unsyncedAge[member] = age }
            let slot = try r.u32()
            if slot > 0 { state.slots[member] = slot }
            let boot = try r.u64()
            if boot != 0 { state.boots[member] = boot }
            state.members.append(member)
        }
        for _ in 0 ..< (try r.count(minimumElementSize: 17)) {
            let member = try r.member()
            state.failed.append(member)
            let boot = try r.u64()
            if boot != 0 { state.boots[member] = boot }
            if try r.u8() == 1 { state.cutOff.insert(member) }
        }
        if try r.u8() == 1 {
            let suspects = try bitmap(&r, regionCount)
            state.suspects = suspects
            let lowest = suspects.firstIndex(of: true, from: 0)
            state.lowestSuspect = lowest < regionCount ? lowest : .max
        }
        state.recoveryPending = try r.u8() == 1
        state.generation = try r.varint()
        for _ in 0 ..< (try r.count()) {
            let region = try r.varint()
            guard region < regionCount else { throw .malformed("priority region \(region) out of range") }
            state.priority.append(region)
        }
        state.flushNumber = try r.varint()
        state.ackedFlush = try r.varint()
        state.needsDiskLoad = try r.u8() == 1
        if try r.u8() == 1 { state.log.diskWriteFailed() }
        state.log.resyncCursor = min(try r.varint(), regionCount)
        state.writer = try r.u8() == 1 ? try r.member() : nil
        if try r.u8() == 1 {
            let dirty = try BitmapRunLength.decode(from: &r)
            guard let blocks = state.log.disk?.dirtyBlocks.count, blocks == dirty.count else {
                throw .malformed("dirty-block map of \(dirty.count) blocks does not fit this member's log device")
            }
            state.log.disk?.dirtyBlocks = dirty
        }
        guard r.isAtEnd else { throw .trailingBytes(r.remaining) }
        return state
    }

    /// A 64-bit FNV-1a digest of the encoded state: equal on every member that agrees.
    public static func digest(_ state: ReplicatedLog) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in encode(state) {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    private static func bitmap(_ r: inout LittleEndianReader, _ count: UInt64) throws(ClusterMessageError) -> Bitmap {
        let bitmap = try BitmapRunLength.decode(from: &r)
        guard bitmap.count == count else { throw .malformed("bitmap of \(bitmap.count) bits, expected \(count)") }
        return bitmap
    }
}

/// One piece of a state transfer. The identity names the donor and its transfer serial; each
/// recipient's `point` is the number of configuration changes it has seen since it joined when the
/// snapshot was taken, so it knows which of the messages it buffered the snapshot already contains.
public struct SnapshotChunk: Sendable, Equatable {
    /// The log's uuid bytes.
    public var log: [UInt8]
    public var donor: MemberID
    public var serial: UInt64
    public var recipients: [Recipient]
    public var index: Int
    public var count: Int
    public var data: [UInt8]

    public struct Recipient: Sendable, Equatable {
        public var member: MemberID
        public var point: UInt64
        public init(member: MemberID, point: UInt64) {
            self.member = member
            self.point = point
        }
    }

    public init(log: [UInt8], donor: MemberID, serial: UInt64, recipients: [Recipient], index: Int, count: Int, data: [UInt8]) {
        self.log = log
        self.donor = donor
        self.serial = serial
        self.recipients = recipients
        self.index = index
        self.count = count
        self.data = data
    }

    /// Bytes of snapshot data per chunk.
    public static let chunkSize = 64 * 1024

    /// Splits `snapshot` into chunks.
    public static func split(_ snapshot: [UInt8], log: [UInt8], donor: MemberID, serial: UInt64, recipients: [Recipient]) -> [SnapshotChunk] {
        let count = max(1, (snapshot.count + chunkSize - 1) / chunkSize)
        return (0 ..< count).map { index in
            let range = index * chunkSize ..< min(snapshot.count, (index + 1) * chunkSize)
            return SnapshotChunk(log: log, donor: donor, serial: serial, recipients: recipients, index: index, count: count, data: Array(snapshot[range]))
        }
    }

    func encode(into w: inout LittleEndianWriter) {
        w.blob(log)
        w.member(donor)
        w.varint(serial)
        w.varint(UInt64(recipients.count))
        for recipient in recipients {
            w.member(recipient.member)
            w.varint(recipient.point)
        }
        w.varint(UInt64(index))
        w.varint(UInt64(count))
        w.blob(data)
    }

    static func decode(from r: inout LittleEndianReader) throws(ClusterMessageError) -> SnapshotChunk {
        let log = try logName(&r)
        let donor = try r.member()
        let serial = try r.varint()
        var recipients: [Recipient] = []
        for _ in 0 ..< (try r.count(minimumElementSize: 9)) {
            recipients.append(Recipient(member: try r.member(), point: try r.varint()))
        }
        let index = try r.varint()
        let count = try r.varint()
        guard count >= 1, count <= 1 << 16, index < count else { throw .malformed("chunk \(index) of \(count)") }
        return SnapshotChunk(log: log, donor: donor, serial: serial, recipients: recipients, index: Int(index), count: Int(count), data: try r.blob())
    }
}
