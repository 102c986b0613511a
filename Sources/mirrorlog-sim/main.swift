// mirrorlog-sim: runs the deterministic cluster simulation (Sources/MirrorLogSimulation) over many
// seeds, in parallel, and prints every failing seed with its replay command. See Docs/simulation.md.
//
//   mirrorlog-sim --seed 123 [--trace]          one seed (the trace shows every step)
//   mirrorlog-sim --count 10000 [--start 0]     seeds start ..< start+count; exit 1 on any failure
//   mirrorlog-sim --soak [--seconds 600]        random seeds until stopped (or for that long)
//   --jobs N                                    worker tasks (default: the number of cores)
//   --known FILE                                seeds of open bugs (Tests/simulation/known-failures.txt):
//                                               they may fail; any other failing seed fails the run
#if canImport(Glibc)
import Glibc
#endif
import MirrorLogSimulation

struct Arguments {
    var seed: UInt64?
    var start: UInt64 = 0
    var count = 1000
    var soak = false
    var seconds: Double?
    var trace = false
    var jobs = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    var tail = 80
    var known: [UInt64: String] = [:]
    var knownPath: String?

    init(_ words: [String]) {
        var rest = words[...]
        func value<T: LosslessStringConvertible>(_ name: String) -> T {
            guard let next = rest.popFirst(), let number = T(next) else { usage("\(name) needs a number") }
            return number
        }
        while let word = rest.popFirst() {
            switch word {
            case "--seed": seed = value(word)
            case "--start": start = value(word)
            case "--count": count = value(word)
            case "--soak": soak = true
            case "--seconds": seconds = value(word)
            case "--trace": trace = true
            case "--tail": tail = value(word)
            case "--jobs": jobs = max(1, value(word))
            case "--known":
                guard let path = rest.popFirst() else { usage("--known needs a file") }
                knownPath = path
                known = loadKnown(path)
            case "-h", "--help": usage(nil)
            default: usage("unknown argument \(word)")
            }
        }
    }
}

/// `<seed> <open bug>` per line; `#` starts a comment.
func loadKnown(_ path: String) -> [UInt64: String] {
    guard let file = fopen(path, "r") else { usage("cannot read \(path)") }
    defer { fclose(file) }
    var known: [UInt64: String] = [:]
    var line: UnsafeMutablePointer<CChar>?
    var capacity = 0
    while getline(&line, &capacity, file) > 0 {
        let text = String(cString: line!).split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let words = text.split(separator: " ", maxSplits: 1)
        if let first = words.first, let seed = UInt64(first) {
            known[seed] = words.count > 1 ? String(words[1].drop { $0 == " " }.reversed().drop { $0 == " " || $0 == "\n" }.reversed()) : ""
        }
    }
    free(line)
    return known
}

func usage(_ problem: String?) -> Never {
    if let problem { print("mirrorlog-sim: \(problem)") }
    print("usage: mirrorlog-sim --seed N [--trace] | --count N [--start S] | --soak [--seconds S] [--start S]  [--jobs J]")
    exit(problem == nil ? 0 : 2)
}

func report(_ outcome: ClusterSimulation.Outcome, tail: Int) {
    guard let violation = outcome.violation else { return }
    print("FAIL \(violation)")
    print("  configuration: \(outcome.configuration)\(outcome.statistics.quorumlessMerges > 0 ? " [merge without a quorate side]" : "")")
    let traced = ClusterSimulation.run(seed: outcome.seed, options: .init(trace: true))
    print("  last \(min(tail, traced.trace.count)) of \(traced.trace.count) steps:")
    for line in traced.trace.suffix(tail) { print("    \(line)") }
}

/// Runs `seeds` on `jobs` tasks; returns the failing outcomes, sorted by seed, the steps run, and a
/// digest of every outcome (equal in two runs: a seed names one run, whatever the process).
func runMany(_ seeds: [UInt64], jobs: Int) async -> (failures: [ClusterSimulation.Outcome], steps: Int, digest: UInt64) {
    await withTaskGroup(of: ([ClusterSimulation.Outcome], Int, UInt64).self) { tasks in
        for job in 0 ..< jobs {
            tasks.addTask {
                var failures: [ClusterSimulation.Outcome] = []
                var steps = 0
                var digest: UInt64 = 0
                var i = job
                while i < seeds.count {
                    let outcome = ClusterSimulation.run(seed: seeds[i])
                    steps += outcome.steps
                    digest ^= (seeds[i] &* 0x9E37_79B9_7F4A_7C15) ^ (UInt64(outcome.steps) &* 0xBF58_476D_1CE4_E5B9) ^ UInt64(outcome.statistics.replies)
                    if outcome.violation != nil { failures.append(outcome) }
                    i += jobs
                }
                return (failures, steps, digest)
            }
        }
        var all: [ClusterSimulation.Outcome] = []
        var steps = 0
        var digest: UInt64 = 0
        for await (failures, count, part) in tasks {
            all += failures
            steps += count
            digest ^= part
        }
        return (all.sorted { $0.seed < $1.seed }, steps, digest)
    }
}

let arguments = Arguments(Array(CommandLine.arguments.dropFirst()))
let clock = ContinuousClock()

if let seed = arguments.seed {
    let outcome = ClusterSimulation.run(seed: seed, options: .init(trace: arguments.trace))
    print("seed \(seed): \(outcome.configuration)")
    if arguments.trace { for line in outcome.trace { print(line) } }
    let s = outcome.statistics
    print("steps \(outcome.steps) (converged \(outcome.convergenceSteps) steps after the faults stopped), \(s.deliveries) deliveries, \(s.replies) replies, \(s.resyncedRegions) regions resynced, \(s.refusedMulticasts) TRY_AGAIN, faults \(s.faults.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
    if let violation = outcome.violation {
        var replay = ClusterSimulation(seed: seed)
        replay.runToEnd()
        for line in replay.dump() { print(line) }
        print("FAIL \(violation)")
        exit(1)
    }
    print("ok")
    exit(0)
}

if arguments.soak {
    var start = arguments.start
    if start == 0 { start = UInt64(time(nil)) &* 1_000_003 }
    let began = clock.now
    var done = 0
    var failed = 0
    print("soak: seeds from \(start), \(arguments.jobs) jobs\(arguments.seconds.map { ", for \($0) s" } ?? ", until stopped")")
    while true {
        let batch = (0 ..< UInt64(arguments.jobs * 200)).map { start &+ $0 }
        start &+= UInt64(batch.count)
        let (failures, _, _) = await runMany(batch, jobs: arguments.jobs)
        done += batch.count
        failed += failures.count
        for outcome in failures { report(outcome, tail: arguments.tail) }
        let elapsed = began.duration(to: clock.now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("soak: \(done) seeds, \(failed) failing, \(Int(Double(done) / seconds)) seeds/s, next seed \(start)")
        if let limit = arguments.seconds, seconds >= limit { exit(failed == 0 ? 0 : 1) }
    }
}

let seeds = (0 ..< UInt64(arguments.count)).map { arguments.start &+ $0 }
let began = clock.now
let (failures, steps, digest) = await runMany(seeds, jobs: arguments.jobs)
let elapsed = began.duration(to: clock.now)
let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
let unexpected = failures.filter { arguments.known[$0.seed] == nil }
let knownFailing = failures.filter { arguments.known[$0.seed] != nil }
for outcome in unexpected { report(outcome, tail: arguments.tail) }
for outcome in knownFailing {
    print("known open bug, seed \(outcome.seed): \(arguments.known[outcome.seed]!) — \(outcome.violation!.invariant.rawValue): \(outcome.violation!.message.prefix(160))")
}
let failingSeeds = Set(failures.map(\.seed))
let fixed = arguments.known.keys.filter { seeds.contains($0) && !failingSeeds.contains($0) }.sorted()
if !fixed.isEmpty { print("known-failing seeds that pass now (remove them from \(arguments.knownPath ?? "the list")): \(fixed.map(String.init).joined(separator: " "))") }
print("mirrorlog-sim: \(seeds.count) seeds (\(arguments.start) ..< \(arguments.start + UInt64(seeds.count))), \(unexpected.count) failing\(arguments.knownPath == nil ? "" : ", \(knownFailing.count) known open bugs"), \(steps) steps in \((seconds * 10).rounded() / 10) s: \(Int(Double(seeds.count) / seconds)) seeds/s on \(arguments.jobs) job(s); outcome digest \(String(digest, radix: 16))")
exit(unexpected.isEmpty ? 0 : 1)
