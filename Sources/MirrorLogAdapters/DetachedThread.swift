import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Runs blocking work off the event loop on a detached POSIX thread (the recovery restart, the DLM
/// lockspace join); the work reports back through its own pipe, which the loop polls. A plain
/// pthread, because the daemon has no other concurrency runtime to hand it to.
enum DetachedThread {
    private final class Work: Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }

    static func start(_ body: @escaping @Sendable () -> Void) throws(Errno) {
        let work = Unmanaged.passRetained(Work(body)).toOpaque()
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let result = pthread_create(&thread, &attributes, { argument in
            guard let argument else { return nil }
            Unmanaged<Work>.fromOpaque(argument).takeRetainedValue().body()
            return nil
        }, work)
        pthread_attr_destroy(&attributes)
        if result != 0 {
            Unmanaged<Work>.fromOpaque(work).release()
            throw Errno(rawValue: result)
        }
    }
}
