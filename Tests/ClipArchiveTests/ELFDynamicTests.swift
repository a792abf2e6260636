import ClipCore
import ClipTestSupport
import Testing

@testable import ClipArchive

@Suite struct ELFDynamicTests {
  /// Reads `path` as `ELFDynamic.needed` asks, optionally only its first `limit` bytes.
  func needed(_ path: String, limit: UInt64 = .max) throws -> (machine: UInt16, names: [String])? {
    let file = try File(path: path)
    let size = min(try file.size(), limit)
    return try ELFDynamic.needed { offset, count in
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

  @Test func turnsDownAHeaderWhoseOffsetsOverflow() throws {
    // A crafted file: a loadable segment at file offset 2^64 - 1 holding the string table's address.
    func le(_ value: UInt64, _ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    var header = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 56)
    header.replaceSubrange(18..<20, with: le(62, 2))
    header.replaceSubrange(32..<40, with: le(64, 8))  // program headers right after the header
    header.replaceSubrange(54..<56, with: le(56, 2))
    header.replaceSubrange(56..<58, with: le(2, 2))
    func segment(_ type: UInt64, offset: UInt64, vaddr: UInt64, size: UInt64) -> [UInt8] {
      le(type, 4) + le(0, 4) + le(offset, 8) + le(vaddr, 8) + le(vaddr, 8) + le(size, 8) + le(size, 8) + le(0, 8)
    }
    let dynamicAt = UInt64(64 + 2 * 56)
    let dynamic = le(1, 8) + le(0, 8) + le(5, 8) + le(0x10, 8) + le(10, 8) + le(16, 8) + le(0, 16)
    let bytes =
      header + segment(1, offset: .max, vaddr: 0, size: 0x1000)
      + segment(2, offset: dynamicAt, vaddr: 0x2000, size: UInt64(dynamic.count)) + dynamic
    let result = try ELFDynamic.needed { offset, count in
      guard offset < UInt64(bytes.count) else { return [] }
      return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
    }
    #expect(result == nil)
  }

  @Test func findsADynamicSegmentFarPastTheStartOfALargeFile() throws {
    // A crafted 2 MiB shared object: its string table near the start, its dynamic segment at 1.5 MiB (past the
    // bytes kept of a file's start), read as a tar stream goes by in 64 KiB chunks.
    func le(_ value: UInt64, _ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    let size = 2 << 20
    let dynamicAt = 3 << 19
    var file = [UInt8](repeating: 0, count: size)
    func put(_ bytes: [UInt8], at offset: Int) { file.replaceSubrange(offset..<offset + bytes.count, with: bytes) }
    put([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], at: 0)
    put(le(3, 2) + le(62, 2), at: 16)
    put(le(64, 8), at: 32)
    put(le(56, 2) + le(2, 2), at: 54)
    func segment(_ type: UInt64, offset: Int, size: Int) -> [UInt8] {
      le(type, 4) + le(4, 4) + le(UInt64(offset), 8) + le(UInt64(offset), 8) + le(UInt64(offset), 8)
        + le(UInt64(size), 8) + le(UInt64(size), 8) + le(8, 8)
    }
    put(segment(1, offset: 0, size: size) + segment(2, offset: dynamicAt, size: 80), at: 64)
    let strings = Array("\0libfoo.so.1\0libbar.so\0".utf8)
    put(strings, at: 0x200)
    put(
      le(1, 8) + le(1, 8) + le(1, 8) + le(13, 8) + le(5, 8) + le(0x200, 8) + le(10, 8) + le(UInt64(strings.count), 8)
        + le(0, 16), at: dynamicAt)
    var tar = TarBuilder()
    tar.add("usr/lib/libcrafted.so", data: file)
    let bytes = tar.finish()
    var reader = TarReader()
    var programs = ProgramLibraries()
    var entries: [TarEntry] = []
    for start in stride(from: 0, to: bytes.count, by: 65536) {
      try bytes[start..<min(bytes.count, start + 65536)].withUnsafeBytes { slice in
        try reader.feed(slice) { entry in
          programs.note(entry, number: entries.count)
          entries.append(entry)
        }
        programs.feed(slice, at: UInt64(start))
      }
    }
    #expect(programs.needed == [0: ["libfoo.so.1", "libbar.so"]])
  }

  @Test func aStreamOfCraftedHeadersNamesNothingAndDoesNotTrap() throws {
    // Program header tables and dynamic segments at offsets near 2^64, and sizes that would overflow.
    func le(_ value: UInt64, _ size: Int) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    func elf(tableAt: UInt64, dynamicAt: UInt64, dynamicSize: UInt64) -> [UInt8] {
      var header = [0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0] + [UInt8](repeating: 0, count: 56)
      header.replaceSubrange(16..<20, with: le(3, 2) + le(62, 2))
      header.replaceSubrange(32..<40, with: le(tableAt, 8))
      header.replaceSubrange(54..<58, with: le(56, 2) + le(1, 2))
      let segment =
        le(2, 4) + le(4, 4) + le(dynamicAt, 8) + le(0, 8) + le(0, 8) + le(dynamicSize, 8)
        + le(dynamicSize, 8) + le(8, 8)
      return header + segment + [UInt8](repeating: 0xff, count: 4096)
    }
    var tar = TarBuilder()
    tar.add("a", data: elf(tableAt: .max - 8, dynamicAt: 64, dynamicSize: 16))
    tar.add("b", data: elf(tableAt: 64, dynamicAt: .max - 4, dynamicSize: 16))
    tar.add("c", data: elf(tableAt: 64, dynamicAt: 1 << 40, dynamicSize: 1 << 15))
    tar.add("d", data: elf(tableAt: 64, dynamicAt: 120, dynamicSize: .max))
    let bytes = tar.finish()
    var reader = TarReader()
    var programs = ProgramLibraries()
    var count = 0
    try bytes.withUnsafeBytes { all in
      try reader.feed(all) { entry in
        programs.note(entry, number: count)
        count += 1
      }
      programs.feed(all, at: 0)
    }
    #expect(count == 4)
    #expect(programs.needed.isEmpty)
  }

  @Test func findsTheLibrariesOfTheProgramsInATarStream() throws {
    let env = try File(path: "/usr/bin/env").readToEnd()
    let libc = try File(path: "/lib/x86_64-linux-gnu/libc.so.6").readToEnd()
    var tar = TarBuilder()
    tar.add("etc/passwd", data: Array("root:x:0:0::/root:/bin/sh\n".utf8))
    tar.add("usr/bin/env", mode: 0o755, data: env)
    tar.add("notes", data: Array(env.prefix(17)) + [UInt8](repeating: 0, count: 200))  // cut short: ELF magic only
    tar.add("lib/libc.so.6", data: libc)
    tar.add("bin/static", data: Array(env.prefix(64)))  // headers whose program headers are missing
    let bytes = tar.finish()
    for chunk in [1, 7, 512, 65536] {
      var reader = TarReader()
      var programs = ProgramLibraries()
      var entries: [TarEntry] = []
      var offset = 0
      while offset < bytes.count {
        let end = min(bytes.count, offset + (chunk == 1 && offset > 4096 ? 4093 : chunk))
        try bytes[offset..<end].withUnsafeBytes { slice in
          try reader.feed(slice) { entry in
            programs.note(entry, number: entries.count)
            entries.append(entry)
          }
          programs.feed(slice, at: UInt64(offset))
        }
        offset = end
      }
      #expect(programs.needed.keys.sorted() == [1, 3], "chunks of \(chunk)")
      #expect(programs.needed[1]?.contains("libc.so.6") == true)
      #expect(programs.needed[3]?.contains { $0.hasPrefix("ld-linux") } == true)
    }
  }
}
