import ClipArchive
import ClipCore
import ClipTestSupport
import Testing

@Suite struct TarReaderTests {
  func read(_ bytes: [UInt8], chunk: Int = 4096) throws -> [TarEntry] {
    var reader = TarReader()
    var entries: [TarEntry] = []
    var start = 0
    while start < bytes.count {
      let end = min(bytes.count, start + chunk)
      try bytes[start..<end].withUnsafeBytes { try reader.feed($0) { entries.append($0) } }
      start = end
    }
    try reader.finish()
    return entries
  }

  @Test func everyEntryType() throws {
    var tar = TarBuilder()
    tar.add("./etc/", type: "5", mode: 0o755)
    tar.add("./etc/passwd", uid: 0, data: Array("root:x:0:0\n".utf8))
    tar.add("bin/sh", type: "2", link: "busybox")
    tar.add("bin/ash", type: "1", link: "./etc/passwd")
    tar.add("dev/null", type: "3", mode: 0o666, major: 1, minor: 3)
    tar.add("dev/sda", type: "4", mode: 0o660, major: 8, minor: 0)
    tar.add("run/fifo", type: "6", mode: 0o600)
    tar.add("usr/bin/sudo", mode: 0o4755, uid: 0, gid: 0, data: [1, 2, 3])
    tar.add("tmp", type: "5", mode: 0o1777)
    let entries = try read(tar.finish())
    #expect(
      entries.map(\.kind) == [
        .directory, .regular, .symlink, .hardlink, .characterDevice, .blockDevice, .fifo, .regular, .directory,
      ])
    #expect(
      entries.map(\.displayPath) == [
        "etc", "etc/passwd", "bin/sh", "bin/ash", "dev/null", "dev/sda", "run/fifo", "usr/bin/sudo", "tmp",
      ])
    #expect(entries[1].size == 11 && entries[1].dataOffset == 1024)
    #expect(entries[2].linkTarget == Array("busybox".utf8))
    #expect(entries[3].linkTarget == Array("etc/passwd".utf8))
    #expect(entries[4].deviceMajor == 1 && entries[4].deviceMinor == 3)
    #expect(entries[7].mode == 0o4755)
    #expect(entries[8].mode == 0o1777)
  }

  @Test(arguments: [1, 7, 512, 513, 100_000])
  func chunkingDoesNotMatter(chunk: Int) throws {
    var tar = TarBuilder()
    tar.add("a", data: testData(count: 5000, seed: 1))
    tar.add(String(repeating: "long/", count: 40) + "name", data: [9], gnuLongName: true)
    tar.add("p", data: [1, 2], pax: ["path": String(repeating: "x", count: 300), "mtime": "1600000000.123456789"])
    let bytes = tar.finish()
    #expect(try read(bytes, chunk: chunk) == (try read(bytes, chunk: bytes.count)))
  }

  @Test func paxRecords() throws {
    var tar = TarBuilder()
    let capability = "\u{1}\u{0}\u{0}\u{2}"
    tar.add(
      "short", data: [1, 2, 3],
      pax: [
        "path": "very/" + String(repeating: "deep/", count: 30) + "file", "uid": "4000000", "gid": "77",
        "mtime": "1600000000.5", "SCHILY.xattr.user.comment": "hello",
        "SCHILY.xattr.security.capability": capability,
      ])
    tar.add("link", type: "2", pax: ["linkpath": String(repeating: "t", count: 200)])
    tar.add("old", pax: ["mtime": "-1.25"])
    let entries = try read(tar.finish())
    #expect(entries[0].path.count == 5 + 150 + 4)
    #expect(entries[0].uid == 4_000_000 && entries[0].gid == 77)
    #expect(entries[0].mtime == 1_600_000_000 && entries[0].mtimeNanoseconds == 500_000_000)
    #expect(entries[0].xattrs.map(\.name) == ["security.capability", "user.comment"])
    #expect(entries[0].xattrs[0].value == Array(capability.utf8))
    #expect(entries[1].linkTarget.count == 200)
    #expect(entries[2].mtime == -2 && entries[2].mtimeNanoseconds == 750_000_000)
  }

  @Test func gnuLongNameAndNonUTF8() throws {
    var tar = TarBuilder()
    let long = String(repeating: "n", count: 180)
    tar.add(long, data: [1], gnuLongName: true)
    tar.add("", data: [2], rawName: [0x63, 0x61, 0x66, 0xE9])
    let entries = try read(tar.finish())
    #expect(entries[0].path == Array(long.utf8))
    #expect(entries[1].path == [0x63, 0x61, 0x66, 0xE9])
  }

  @Test func badChecksumIsAnError() throws {
    var tar = TarBuilder()
    tar.add("ok", data: [1])
    tar.header(Array("bad".utf8), type: "0", size: 0, corruptChecksum: true)
    let error = try #require(throws: ClipError.self) { try read(tar.finish()) }
    #expect(error.message.contains("checksum"))
    #expect(error.context.contains("tar header at offset 1024"))
  }

  @Test func negativeSizeIsAnError() throws {
    var tar = TarBuilder()
    tar.header(Array("neg".utf8), type: "0", size: 0, sizeField: [0xff] + [UInt8](repeating: 0xff, count: 11))
    let error = try #require(throws: ClipError.self) { try read(tar.finish()) }
    #expect(error.message.contains("negative size"))
  }

  @Test func hugeSizeIsTruncation() throws {
    var tar = TarBuilder()
    tar.header(
      Array("huge".utf8), type: "0", size: 0,
      sizeField: [0x80] + [UInt8](repeating: 0, count: 4) + [0x7f] + [UInt8](repeating: 0xff, count: 6))
    let error = try #require(throws: ClipError.self) { try read(tar.finish()) }
    #expect(error.message.contains("ends in the middle of an entry"))
  }

  @Test func pathsAreConfinedToTheRoot() throws {
    var escaping = TarBuilder()
    escaping.add("../x", data: [1])
    let error = try #require(throws: ClipError.self) { try read(escaping.finish()) }
    #expect(error.message.contains("leaves the image root"))

    var absolute = TarBuilder()
    absolute.add("/abs/./x//y", data: [1])
    #expect(try read(absolute.finish()).map(\.displayPath) == ["abs/x/y"])
  }

  @Test func sparseFilesAreRefused() throws {
    var tar = TarBuilder()
    tar.add("sparse", type: "S")
    let error = try #require(throws: ClipError.self) { try read(tar.finish()) }
    #expect(error.code == .unsupported)
  }

  @Test func truncatedStreamIsAnError() throws {
    var tar = TarBuilder()
    tar.add("file", data: [UInt8](repeating: 7, count: 3000))
    let bytes = tar.finish()
    #expect(throws: ClipError.self) { try read(Array(bytes.prefix(1500))) }
    #expect(throws: ClipError.self) { try read(Array(bytes.prefix(300))) }
  }
}
