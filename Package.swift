// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "mirrorlogd",
    products: [
        .executable(name: "mirrorlogd", targets: ["mirrorlogd"]),
        .executable(name: "mirrorlogctl", targets: ["mirrorlogctl"]),
        .library(name: "MirrorLogCore", targets: ["MirrorLogCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.4.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        // Pure core: codec, CTR parsing, disk format and the log state machine. No I/O, clock or randomness.
        .target(name: "MirrorLogCore"),
        // Deterministic simulation of several daemons over a simulated CPG (test support; pure).
        .target(name: "MirrorLogSimulation", dependencies: ["MirrorLogCore"]),
        // Tiny C shim for Linux constants and ioctls that Swift cannot import directly.
        .target(name: "CMirrorLogSys"),
        // corosync's client libraries (libcpg, libquorum, libcorosync_common) as a system library.
        .systemLibrary(name: "CCorosync", path: "Sources/CCorosync"),
        // The DLM's thread-free client library (libdlm_lt) for the fencing barrier.
        .systemLibrary(name: "CDLM", path: "Sources/CDLM"),
        // Thin adapters: netlink connector socket, block-device I/O, pidfile lock, signals, corosync.
        .target(
            name: "MirrorLogAdapters",
            dependencies: [
                "MirrorLogCore", "CMirrorLogSys", "CCorosync", "CDLM",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The shell: event loop and wiring of core and adapters.
        .target(
            name: "MirrorLogDaemon",
            dependencies: [
                "MirrorLogCore", "MirrorLogAdapters",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .executableTarget(
            name: "mirrorlogd",
            dependencies: [
                "MirrorLogDaemon",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The operator's client of the control socket.
        .executableTarget(
            name: "mirrorlogctl",
            dependencies: [
                "MirrorLogCore", "MirrorLogAdapters",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Raw CPG round trip and membership tool for the cluster benchmark.
        .executableTarget(
            name: "mirrorlog-cpgbench",
            dependencies: [
                "MirrorLogAdapters", "MirrorLogCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The deterministic cluster simulation over many seeds (CI run, replays, soak); see Docs/simulation.md.
        .executableTarget(name: "mirrorlog-sim", dependencies: ["MirrorLogSimulation"]),
        // C view of the uapi structs, so tests can compare our layout with the kernel headers.
        .target(name: "CULogLayout", path: "Tests/CULogLayout"),
        .testTarget(
            name: "MirrorLogCoreTests",
            dependencies: [
                "MirrorLogCore", "CULogLayout", "MirrorLogSimulation",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
