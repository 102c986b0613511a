import ArgumentParser
import Logging
import MirrorLogAdapters
import MirrorLogDaemon

#if canImport(Glibc)
import Glibc
#endif

/// Command line, compatible with cmirrord's (`-f`, `-h`) plus what an operator expects.
struct MirrorLogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mirrorlogd",
        abstract: "Cluster-aware device-mapper mirror log daemon (a cmirrord replacement).",
        discussion: """
        Serves dm-mirror's `userspace` dirty log over the kernel's netlink connector. Runs as root.
        SIGUSR1 writes every log's state to the log. SIGTERM/SIGINT exit when no log is active; with \
        active logs, send the signal twice within 10 s to force an exit.
        """,
        version: MirrorLogVersion.string
    )

    @Flag(name: [.customShort("f"), .long], help: "Stay in the foreground and log to stderr.")
    var foreground = false

    @Flag(help: "Log every request and reply.")
    var debug = false

    @Option(help: "Pidfile that keeps a single instance.")
    var pidfile = "/run/mirrorlogd.pid"

    @Option(help: ArgumentHelp("Directory for private device nodes of major:minor log devices.", visibility: .hidden))
    var runtimeDirectory = "/run/mirrorlogd"

    @Option(help: ArgumentHelp("Testing and replay: take kernel requests from this Unix socket (SOCK_SEQPACKET, the netlink connector's bytes) instead of the kernel.", valueName: "path"))
    var kernelSocket: String?

    @Flag(help: ArgumentHelp("Recover a failed node's regions once corosync's quorum no longer lists it, without the DLM's proof that it was fenced. Unsafe: a node cut off or hung may still be writing them. For tests and single-node use.", visibility: .default))
    var noFencing = false

    @Option(help: ArgumentHelp("Benchmarks: at most this many cluster operations per CPG message (1: one request per message).", visibility: .hidden))
    var clusterOperationsPerMessage: Int?

    func run() throws {
        var configuration = DaemonConfiguration(foreground: foreground, debug: debug, pidfilePath: pidfile, runtimeDirectory: runtimeDirectory, kernelSocketPath: kernelSocket)
        configuration.clusterOperationsPerMessage = clusterOperationsPerMessage
        configuration.fencing = noFencing ? .unfenced : .dlm
        let readyFD: Int32 = foreground ? -1 : Detach.detach()
        let destination: MirrorLogHandler.Destination = foreground ? .standardError : .syslog
        if !foreground { Syslog.open() }
        let level: Logger.Level = debug ? .debug : .info
        LoggingSystem.bootstrap { label in MirrorLogHandler(label: label, destination: destination, level: level) }
        let logger = Logger(label: "mirrorlogd")

        let pid: PidFile
        do {
            pid = try PidFile(path: pidfile)
        } catch {
            logger.critical("\(error)")
            Detach.reportReady(readyFD, status: 1)
            throw ExitCode(1)
        }
        let daemon: Daemon
        do {
            daemon = try Daemon(configuration: configuration, logger: logger)
        } catch {
            logger.critical("\(error)")
            pid.release()
            Detach.reportReady(readyFD, status: 1)
            throw ExitCode(1)
        }
        Detach.reportReady(readyFD, status: 0)
        let status = daemon.run()
        pid.release()
        logger.info("exiting")
        if status != 0 { throw ExitCode(status) }
    }
}

MirrorLogCommand.main()
