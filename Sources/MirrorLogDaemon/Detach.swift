#if canImport(Glibc)
import Glibc
#endif

/// Detaches from the terminal the classic way (fork, setsid, stdio to /dev/null). The parent waits
/// for the child to report that start-up worked, so `mirrorlogd` without `-f` exits non-zero when the
/// daemon could not start, as cmirrord does. Call before any thread exists.
public enum Detach {
    /// Forks. In the parent this never returns: it exits with the child's start-up status.
    /// In the child it returns the fd to pass to ``reportReady(_:status:)``.
    public static func detach() -> Int32 {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return -1 }
        let pid = fork()
        if pid < 0 { return -1 }
        if pid > 0 {
            close(pipeFDs[1])
            var status: UInt8 = 1
            let n = read(pipeFDs[0], &status, 1)
            exit(n == 1 ? Int32(status) : 1)
        }
        close(pipeFDs[0])
        setsid()
        _ = chdir("/")
        let null = open("/dev/null", O_RDWR)
        if null >= 0 {
            dup2(null, 0)
            dup2(null, 1)
            dup2(null, 2)
            if null > 2 { close(null) }
        }
        return pipeFDs[1]
    }

    /// Tells the waiting parent how start-up went (0 = ready).
    public static func reportReady(_ fd: Int32, status: UInt8) {
        guard fd >= 0 else { return }
        var value = status
        _ = write(fd, &value, 1)
        close(fd)
    }
}
