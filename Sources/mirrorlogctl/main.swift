import ArgumentParser
import FoundationEssentials
import MirrorLogCore

#if canImport(Glibc)
import Glibc
#endif

/// The operator's view of a running mirrorlogd, through its control socket.
struct MirrorLogControl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirrorlogctl",
        abstract: "Show the state of a running mirrorlogd.",
        subcommands: [Status.self],
        defaultSubcommand: Status.self
    )
}

/// How `status` ends, as `mdadm --detail --test` does.
enum StatusExit: Int32 {
    case healthy = 0, degraded = 1, failed = 2, unreachable = 4
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One paragraph per log, and one for the node.",
        discussion: """
        Exit status: 0 healthy, 1 degraded (resyncing, log device D, recovery waiting for fencing, \
        inquorate, a clustered log joining), 2 failed (clustered logs without corosync or the DLM), \
        4 the daemon does not answer.
        """
    )

    @Flag(help: "Print the status as JSON (schema in Docs/operations.md).")
    var json = false

    @Option(help: "The daemon's control socket.")
    var socket = "/run/mirrorlogd/ctl.sock"

    func run() throws {
        let body: [UInt8]
        switch ControlClient.ask(.status, at: socket) {
        case let .success(bytes):
            body = bytes
        case let .failure(problem):
            printError("mirrorlogctl: \(problem)")
            throw ExitCode(StatusExit.unreachable.rawValue)
        }
        let report: StatusReport
        do {
            report = try JSONDecoder().decode(StatusReport.self, from: Data(body))
        } catch {
            printError("mirrorlogctl: the daemon's status could not be read: \(error)")
            throw ExitCode(StatusExit.unreachable.rawValue)
        }
        if json {
            print(String(decoding: body, as: UTF8.self))
        } else {
            print(StatusText.render(report), terminator: "")
        }
        let health = report.health.rawValue
        if health != 0 { throw ExitCode(health) }
    }
}

func printError(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

MirrorLogControl.main()
