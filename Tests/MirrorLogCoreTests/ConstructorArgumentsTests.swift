import Testing
@testable import MirrorLogCore

@Suite struct ConstructorArgumentsTests {
    static func parse(_ s: String) -> Result<ConstructorArguments, ConstructorError> {
        Result { () throws(ConstructorError) in try ConstructorArguments.parse(s) }
    }

    static func error(_ s: String) -> ConstructorError? {
        if case let .failure(e) = parse(s) { return e }
        return nil
    }

    // MARK: Valid strings

    @Test func core() throws {
        let a = try ConstructorArguments.parse("131072 core 1024")
        #expect(a == ConstructorArguments(lengthSectors: 131072, logType: .core, logDevice: nil, regionSize: 1024, syncMode: .default, blockOnError: false))
        #expect(a.regionCount == 128)
    }

    @Test func diskWithPathAndNosync() throws {
        let a = try ConstructorArguments.parse("131072 disk /dev/loop3 1024 nosync")
        #expect(a == ConstructorArguments(lengthSectors: 131072, logType: .disk, logDevice: .path("/dev/loop3"), regionSize: 1024, syncMode: .noSync, blockOnError: false))
    }

    @Test func clusteredDiskWithNumberSyncAndBlockOnError() throws {
        let a = try ConstructorArguments.parse("131072 clustered-disk 253:2 1024 sync block_on_error")
        #expect(a == ConstructorArguments(lengthSectors: 131072, logType: .clusteredDisk, logDevice: .number(major: 253, minor: 2), regionSize: 1024, syncMode: .forceSync, blockOnError: true))
        #expect(a.logDevice?.description == "253:2")
    }

    @Test func clusteredCore() throws {
        let a = try ConstructorArguments.parse("2048 clustered-core 512 block_on_error nosync")
        #expect(a == ConstructorArguments(lengthSectors: 2048, logType: .clusteredCore, logDevice: nil, regionSize: 512, syncMode: .noSync, blockOnError: true))
        #expect(a.regionCount == 4)
    }

    @Test func extraSpacesAreTolerated() throws {
        let a = try ConstructorArguments.parse("  131072   core  1024  ")
        #expect(a.regionCount == 128)
    }

    @Test(arguments: [
        (UInt64(131072), UInt32(1024), UInt64(128)),
        (131073, 1024, 129),
        (131071, 1024, 128),
        (1025, 1024, 2),
        (1024, 1024, 1),
        (2, 2, 1),
        (3, 2, 2),
        (1 << 40, 1 << 20, 1 << 20),
    ])
    func regionCountIsCeiling(length: UInt64, regionSize: UInt32, expected: UInt64) throws {
        let a = try ConstructorArguments.parse("\(length) core \(regionSize)")
        #expect(a.regionCount == expected)
        #expect(a.regionCount * UInt64(regionSize) >= length)
        #expect((a.regionCount - 1) * UInt64(regionSize) < length)
    }

    @Test func logTypeProperties() {
        #expect(LogType.allCases.map(\.rawValue) == ["core", "disk", "clustered-core", "clustered-disk"])
        #expect(LogType.allCases.filter(\.hasLogDevice) == [.disk, .clusteredDisk])
        #expect(LogType.allCases.filter(\.isClustered) == [.clusteredCore, .clusteredDisk])
    }

    // MARK: Errors

    @Test func empty() {
        #expect(Self.error("") == .empty)
        #expect(Self.error("   ") == .empty)
    }

    @Test(arguments: ["0", "abc", "-5", "12x", "18446744073709551616"])
    func badLength(word: String) {
        #expect(Self.error("\(word) core 1024") == .badLength(word))
    }

    @Test func missingType() {
        #expect(Self.error("131072") == .missingLogType)
    }

    @Test func unknownType() {
        #expect(Self.error("131072 mirror 1024") == .unknownLogType("mirror"))
        #expect(Self.error("131072 Core 1024") == .unknownLogType("Core"))
        #expect(Self.error("131072 clustered_disk 253:2 1024") == .unknownLogType("clustered_disk"))
    }

    @Test func missingLogDevice() {
        #expect(Self.error("131072 disk") == .missingLogDevice(.disk))
        #expect(Self.error("131072 clustered-disk") == .missingLogDevice(.clusteredDisk))
    }

    @Test(arguments: ["dev/loop3", "12:", ":3", "a:b", "1:2:3", "loop3", "-1:2"])
    func badLogDevice(word: String) {
        #expect(Self.error("131072 disk \(word) 1024") == .badLogDevice(word))
    }

    @Test func missingRegionSize() {
        #expect(Self.error("131072 core") == .missingRegionSize)
        #expect(Self.error("131072 disk 7:3") == .missingRegionSize)
    }

    @Test func regionSizeErrors() {
        #expect(Self.error("131072 core abc") == .badRegionSize("abc", reason: "not a number of sectors"))
        #expect(Self.error("131072 core -1024") == .badRegionSize("-1024", reason: "not a number of sectors"))
        #expect(Self.error("131072 core 4294967296") == .badRegionSize("4294967296", reason: "not a number of sectors"))
        #expect(Self.error("131072 core 0") == .badRegionSize("0", reason: "must be at least 2 sectors"))
        #expect(Self.error("131072 core 1") == .badRegionSize("1", reason: "must be at least 2 sectors"))
        #expect(Self.error("131072 core 1000") == .badRegionSize("1000", reason: "must be a power of two"))
        #expect(Self.error("131072 core 3") == .badRegionSize("3", reason: "must be a power of two"))
        // Like the kernel's own logs (and unlike cmirrord), a region larger than the device is refused.
        #expect(Self.error("1000 core 1024") == .badRegionSize("1024", reason: "larger than the device (1000 sectors)"))
        #expect(Self.error("65536 clustered-disk 7:3 131072 nosync") == .badRegionSize("131072", reason: "larger than the device (65536 sectors)"))
        #expect((try? ConstructorArguments.parse("1024 core 1024"))?.regionCount == 1)
        #expect((try? ConstructorArguments.parse("1025 core 1024"))?.regionCount == 2)
        #expect(Self.error("131072 disk 7:3 6") == .badRegionSize("6", reason: "must be a power of two"))
    }

    @Test func unknownArgument() {
        #expect(Self.error("131072 core 1024 fast") == .unknownArgument("fast"))
        #expect(Self.error("131072 core 1024 nosync 7") == .unknownArgument("7"))
        // A device argument where core takes none
        #expect(Self.error("131072 core 7:3 1024") == .badRegionSize("7:3", reason: "not a number of sectors"))
    }

    @Test func duplicateOrConflictingSync() {
        #expect(Self.error("131072 core 1024 sync nosync") == .conflictingArgument("nosync"))
        #expect(Self.error("131072 core 1024 nosync sync") == .conflictingArgument("sync"))
        #expect(Self.error("131072 core 1024 sync sync") == .conflictingArgument("sync"))
        #expect(Self.error("131072 core 1024 block_on_error block_on_error") == .conflictingArgument("block_on_error"))
    }

    @Test func tooManyRegions() throws {
        let max = ConstructorArguments.maxRegionCount
        #expect(try ConstructorArguments.parse("\(max * 2) core 2").regionCount == max)
        #expect(Self.error("\(max * 2 + 1) core 2") == .tooManyRegions(max + 1))
        #expect(Self.error("\(max * 8) disk 7:3 4") == .tooManyRegions(max * 2))
    }

    /// A target length within `regionSize` of `UInt64.max` must be refused, not trap in `regionCount`.
    @Test func hugeLengthIsRefusedNotATrap() async {
        await #expect(processExitsWith: .success) {
            let result = Result { () throws(ConstructorError) in try ConstructorArguments.parse("18446744073709551615 core 1024") }
            guard case .failure(.tooManyRegions) = result else { fatalError("expected tooManyRegions") }
        }
    }
}
