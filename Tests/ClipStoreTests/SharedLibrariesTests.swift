import ClipCore
import Testing

@testable import ClipStore

@Suite struct SharedLibrariesTests {
  /// Reads `path` as `SharedLibraries.needed` asks, optionally only its first `limit` bytes.
  func needed(_ path: String, limit: UInt64 = .max) throws -> (machine: UInt16, names: [String])? {
    let file = try File(path: path)
    let size = min(try file.size(), limit)
    return try SharedLibraries.needed { offset, count in
      guard offset < size else { return [] }
      return try file.read(count: Int(min(UInt64(count), size - offset)), at: offset)
    }
  }

  @Test func readsTheLibrariesAHostProgramNeeds() throws {
    // Debian's env and the C library: env needs libc, libc needs the dynamic loader.
    let env = try #require(try needed("/usr/bin/env"))
    #expect(env.names.contains("libc.so.6"))
    #expect(env.machine == 62 || env.machine == 183)
    let libc = try #require(try needed("/lib/x86_64-linux-gnu/libc.so.6"))
    #expect(libc.names.contains { $0.hasPrefix("ld-linux") })
  }

  @Test func turnsDownWhatIsNotADynamicELFFile() throws {
    #expect(try needed("/etc/passwd") == nil)
    #expect(try needed("/usr/bin/env", limit: 64) == nil)  // the program headers are cut off
    #expect(try needed("/usr/bin/env", limit: 10) == nil)
  }

  @Test func looksInTheMultiarchFoldersFirst() {
    #expect(SharedLibraries.folders(machine: 62).prefix(2) == ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"])
    #expect(SharedLibraries.folders(machine: 183).first == "/lib/aarch64-linux-gnu")
  }
}
