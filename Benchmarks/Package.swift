// swift-tools-version:6.1
// Benchmarks for mirrorlogd, kept in their own package so that the main package does not depend on
// the benchmark library. Run from the repository root:
//   swift package --package-path Benchmarks --scratch-path Benchmarks/.build benchmark
import PackageDescription

let package = Package(
    name: "mirrorlogd-benchmarks",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "mirrorlogd", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "EngineBenchmarks",
            dependencies: [
                .product(name: "MirrorLogCore", package: "mirrorlogd"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/EngineBenchmarks",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
