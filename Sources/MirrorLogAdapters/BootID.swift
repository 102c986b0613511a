#if canImport(Glibc)
import Glibc
#endif

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`, a random UUID per boot) folded into 64
/// bits: a restarted daemon tells whether it serves the kernel its failed predecessor served.
public enum BootID {
    /// This boot's id; never 0 (0 means unknown to the cluster core).
    public static func current(path: String = "/proc/sys/kernel/random/boot_id") -> UInt64 {
        guard let file = fopen(path, "r") else { return 1 }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return 1 }
        return fold(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Folds the UUID's hex digits into 64 bits (FNV-1a); never 0.
    public static func fold(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 where byte != UInt8(ascii: "-") && byte != UInt8(ascii: "\n") {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash == 0 ? 1 : hash
    }
}
