import ClipArchive
import ClipCore
import ClipRegistry
import ClipTestSupport
import Foundation
import Testing

@testable import ClipStore

@Suite struct SharedLibrariesTests {
  let directory = FileManager.default.temporaryDirectory.path + "/clip-libraries-test-\(UUID().uuidString)"

  @Test func theIndexNamesAProgramsLibrariesAndTheyAreFoundWithoutAFetch() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // The host's env and C library in an image layer, the library where Debian keeps it.
    var tar = TarBuilder()
    tar.add("usr/bin/env", mode: 0o755, data: try File(path: "/usr/bin/env").readToEnd())
    tar.add("usr/lib/x86_64-linux-gnu/libc.so.6", data: try File(path: "/lib/x86_64-linux-gnu/libc.so.6").readToEnd())
    tar.add("etc/passwd", data: Array("root:x:0:0::/root:/bin/sh\n".utf8))
    let bytes = tar.finish()
    try OCILayoutWriter(directory: directory).image(gzipLayer: bytes)
    let source = CountingSource(try openImageSource("oci:\(directory):latest"))
    let index = try ImageIndexer().index(source)
    let reader = try ImageReader(index: index, source: source, disk: nil)
    #expect(SharedLibraries.recorded(in: reader))
    let env = try #require(Warming.files(named: ["/usr/bin/env"], in: reader).first)
    let libc = try #require(Warming.files(named: ["/usr/lib/x86_64-linux-gnu/libc.so.6"], in: reader).first)
    let reads = source.reads.count
    #expect(SharedLibraries.libraries(of: env, in: reader) == [libc])
    #expect(source.reads.count == reads)  // from the index, not the file
    let passwd = try #require(Warming.files(named: ["/etc/passwd"], in: reader).first)
    #expect(SharedLibraries.libraries(of: passwd, in: reader).isEmpty)
  }

  @Test func looksInTheMultiarchFoldersFirst() {
    #expect(SharedLibraries.folders(machine: 62).prefix(2) == ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"])
    #expect(SharedLibraries.folders(machine: 183).first == "/lib/aarch64-linux-gnu")
  }
}
