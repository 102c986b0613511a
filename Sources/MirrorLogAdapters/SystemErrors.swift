import SystemPackage

/// Turns a negative-errno return of the C shim into a typed `Errno`.
@inline(__always)
func check<T: SignedInteger>(_ result: T) throws(Errno) -> T {
    if result < 0 { throw Errno(rawValue: Int32(-result)) }
    return result
}
