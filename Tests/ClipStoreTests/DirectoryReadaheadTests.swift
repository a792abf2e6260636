import ClipArchive
import ClipCore
import ClipIndex
import ClipOCI
import ClipRegistry
import ClipTestSupport
import Foundation
import Testing

@testable import ClipStore

@Suite struct DirectoryReadaheadTests {
  let directory = FileManager.default.temporaryDirectory.path + "/clip-readahead-test-\(UUID().uuidString)"

  /// `small/` with eight 100 kB files, `big/` with one 3 MB file, `big/` listed first, 256 KiB spans.
  func reader() throws -> (ImageReader, CountingSource) {
    var tar = TarBuilder()
    tar.add("big/whole", data: testData(count: 3_000_000, seed: 1))
    for i in 0..<8 { tar.add("small/f\(i)", data: testData(count: 100_000, seed: UInt64(i + 2))) }
    let bytes = tar.finish()
    try OCILayoutWriter(directory: directory).image(layers: [(MediaType.ociLayerGzip, Compress.gzip(bytes), bytes)])
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
