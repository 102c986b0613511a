/// Which members hold a mark on which regions.
///
/// One bitmap per member makes a mark idempotent per (member, region), lets a failed member's marks be
/// found or dropped as a whole, and keeps "does anyone hold region r" at O(members) with no allocation.
public struct MarkTable: Sendable, Equatable {
    public let regionCount: UInt64
    /// Members with their marked regions, in order of first mark.
    public private(set) var holders: [(member: MemberID, regions: Bitmap)] = []

    public init(regionCount: UInt64) {
        self.regionCount = regionCount
    }

    /// Records that `member` marked `region`. Returns false if it already held it.
    @discardableResult
    public mutating func mark(_ region: UInt64, by member: MemberID) -> Bool {
        let index = slot(for: member)
        return holders[index].regions.update(region, to: true)
    }

    /// Drops `member`'s mark on `region`. Returns false if it held none.
    @discardableResult
    public mutating func clear(_ region: UInt64, by member: MemberID) -> Bool {
        guard let index = holders.firstIndex(where: { $0.member == member }) else { return false }
        return holders[index].regions.update(region, to: false)
    }

    /// Whether any member holds `region`.
    @inline(__always)
    public func isHeld(_ region: UInt64) -> Bool {
        for holder in holders where holder.regions[region] { return true }
        return false
    }

    /// The regions `member` holds.
    public func regions(of member: MemberID) -> Bitmap? {
        holders.first(where: { $0.member == member })?.regions
    }

    /// Number of regions `member` holds (O(bitmap); for status and dumps only).
    public func markCount(of member: MemberID) -> UInt64 {
        regions(of: member)?.popCount ?? 0
    }

    /// Drops every mark of `member`, returning the regions it held.
    public mutating func removeAll(of member: MemberID) -> Bitmap? {
        guard let index = holders.firstIndex(where: { $0.member == member }) else { return nil }
        return holders.remove(at: index).regions
    }

    private mutating func slot(for member: MemberID) -> Int {
        if let index = holders.firstIndex(where: { $0.member == member }) { return index }
        holders.append((member, Bitmap(count: regionCount)))
        return holders.count - 1
    }

    public static func == (a: MarkTable, b: MarkTable) -> Bool {
        a.regionCount == b.regionCount && a.holders.count == b.holders.count
            && zip(a.holders, b.holders).allSatisfy { $0.member == $1.member && $0.regions == $1.regions }
    }
}
