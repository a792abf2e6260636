import ClipArchive
import ClipCore
import ClipIndex
import ClipRegistry
import ClipTestSupport
import Foundation
import Testing

@testable import ClipStore

@Suite struct DirectoryReadaheadTests {
  let directory = FileManager.default.temporaryDirectory.path + "/clip-readahead-test-\(UUID().uuidString)"

  /// `small/` with eight 100 kB files, `big/` with one 3 MB file, `big/` listed first, 256 KiB spans (or the files
  /// `files` names, with their sizes).
  func reader(_ files: [(String, Int)]? = nil) throws -> (ImageReader, CountingSource) {
    var tar = TarBuilder()
    if let files {
      for (i, (name, size)) in files.enumerated() { tar.add(name, data: testData(count: size, seed: UInt64(i + 20))) }
    } else {
      tar.add("big/whole", data: testData(count: 3_000_000, seed: 1))
      for i in 0..<8 { tar.add("small/f\(i)", data: testData(count: 100_000, seed: UInt64(i + 2))) }
    }
    let bytes = tar.finish()
    try OCILayoutWriter(directory: directory).image(gzipLayer: bytes)
    var indexer = ImageIndexer()
    indexer.spanSize = 256 * 1024
    let source = CountingSource(try openImageSource("oci:\(directory):latest"))
    let index = try indexer.index(source)
    return (
      try ImageReader(index: index, source: source, disk: try DiskCache(root: directory + "/cache", limit: 1 << 30)),
      source
    )
  }

  func inode(_ reader: ImageReader, _ path: String) throws -> Int32 {
    let node = try #require(reader.tree.lookup(Array(path.utf8)))
    return reader.tree.nodes[Int(node)].inode
  }

  @Test func openingASecondFileFetchesItsDirectorysSpans() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (reader, source) = try reader()
    let readahead = DirectoryReadahead(tree: reader.tree, store: reader.store, budget: 1 << 20)
    let first = try inode(reader, "small/f0")
    let node = reader.tree.primaryNode[Int(first)]
    let spans = try #require(readahead.spans(of: reader.tree.nodes[Int(node)].parent))
    #expect(spans.count >= 3)  // 800 kB over 256 KiB spans
    readahead.opened(inode: first)
    readahead.opened(inode: first)
    usleep(100_000)
    #expect(source.reads.isEmpty)  // one file opened (twice): nothing yet
    readahead.opened(inode: try inode(reader, "small/f7"))
    for _ in 0..<200 where reader.store.stats.snapshot().spansPrefetched < UInt64(spans.count) { usleep(10_000) }
    #expect(reader.store.stats.snapshot().spansPrefetched == UInt64(spans.count))
    reader.store.flushWrites()
    let requests = source.reads.count
    for i in 0..<8 {
      var bytes: [UInt8] = []
      try reader.read(inode: try inode(reader, "small/f\(i)")) { bytes += $0 }
      #expect(bytes == testData(count: 100_000, seed: UInt64(i + 2)))
    }
    #expect(source.reads.count == requests)  // all there already
    readahead.opened(inode: try inode(reader, "small/f1"))  // once per directory
    readahead.opened(inode: try inode(reader, "small/f2"))
    #expect(source.reads.count == requests)
  }

  @Test func aSmallDirectoryIsReadAheadAtItsFirstOpen() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (reader, source) = try reader()
    let readahead = DirectoryReadahead(tree: reader.tree, store: reader.store, budget: 8 << 20)  // 800 kB <= 1 MiB
    let first = try inode(reader, "small/f3")
    let spans = try #require(readahead.spans(of: reader.tree.nodes[Int(reader.tree.primaryNode[Int(first)])].parent))
    readahead.opened(inode: first)
    for _ in 0..<200 where reader.store.stats.snapshot().spansPrefetched < UInt64(spans.count) { usleep(10_000) }
    #expect(reader.store.stats.snapshot().spansPrefetched == UInt64(spans.count))
    let requests = source.reads.count
    readahead.opened(inode: try inode(reader, "small/f4"))  // once per directory
    readahead.opened(inode: try inode(reader, "big/whole"))  // 3 MB: only at a second open
    usleep(100_000)
    #expect(source.reads.count == requests)
  }

  @Test func aDirectoryNamedLikeOneReadAheadIsReadAheadAtItsFirstOpen() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // a/mods small (read ahead at its first open), b/mods and c/data 1.8 MB each (more than a budget of 8 MiB / 8).
    let (reader, source) = try reader(
      [("a/mods/m0", 100_000)] + (0..<6).map { ("b/mods/m\($0)", 300_000) } + (0..<6).map { ("c/data/d\($0)", 300_000) }
    )
    let readahead = DirectoryReadahead(tree: reader.tree, store: reader.store, budget: 8 << 20)
    func waitForSpans(_ count: UInt64) {
      for _ in 0..<200 where reader.store.stats.snapshot().spansPrefetched < count { usleep(10_000) }
    }
    readahead.opened(inode: try inode(reader, "c/data/d2"))  // large, and no directory read ahead yet
    usleep(100_000)
    #expect(source.reads.isEmpty)
    readahead.opened(inode: try inode(reader, "a/mods/m0"))
    let small = UInt64(
      try #require(
        readahead.spans(of: reader.tree.nodes[Int(reader.tree.primaryNode[Int(try inode(reader, "a/mods/m0"))])].parent)
      ).count)
    waitForSpans(small)
    #expect(reader.store.stats.snapshot().spansPrefetched == small)
    let b = try inode(reader, "b/mods/m4")
    let large = UInt64(
      try #require(readahead.spans(of: reader.tree.nodes[Int(reader.tree.primaryNode[Int(b)])].parent)).count)
    readahead.opened(inode: b)  // the first open in b/mods: named like a/mods
    waitForSpans(small + large)
    #expect(reader.store.stats.snapshot().spansPrefetched >= small + large - 1)  // a span may hold files of both
    let requests = source.reads.count
    readahead.opened(inode: try inode(reader, "c/data/d2"))  // the same file again: still nothing for c/data
    usleep(100_000)
    #expect(source.reads.count == requests)
  }

  @Test func directoriesOverTheBudgetAreLeftAlone() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (reader, source) = try reader()
    let readahead = DirectoryReadahead(tree: reader.tree, store: reader.store, budget: 1 << 20)
    let big = try inode(reader, "big/whole")
    #expect(readahead.spans(of: reader.tree.nodes[Int(reader.tree.primaryNode[Int(big)])].parent) == nil)
    readahead.opened(inode: try inode(reader, "small/f0"))  // another directory
    readahead.opened(inode: big)
    usleep(100_000)
    #expect(source.reads.isEmpty)
    #expect(reader.store.stats.snapshot().spansPrefetched == 0)
  }
}
