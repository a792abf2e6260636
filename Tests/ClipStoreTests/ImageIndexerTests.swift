import ClipArchive
import ClipCore
import ClipIndex
import ClipOCI
import ClipRegistry
import ClipStore
import ClipTestSupport
import Foundation
import Testing

@Suite struct ImageIndexerTests {
  let directory = FileManager.default.temporaryDirectory.path + "/clip-store-test-\(UUID().uuidString)"

  func layers() -> [(mediaType: String, blob: [UInt8], tar: [UInt8])] {
    var base = TarBuilder()
    base.add("etc/", type: "5", mode: 0o755)
    base.add("etc/hostname", data: Array("clip\n".utf8))
    base.add("big", data: testData(count: 600_000, seed: 5))
    var upper = TarBuilder()
    upper.add("etc/.wh.hostname")
    upper.add("etc/motd", data: Array("hello\n".utf8))
    let baseTar = base.finish()
    let upperTar = upper.finish()
    return [
      (MediaType.ociLayerGzip, Compress.gzip(baseTar), baseTar),
      (MediaType.ociLayerZstd, Compress.zstd(upperTar), upperTar),
    ]
  }

  func index(spanSize: UInt64 = 64 * 1024) throws -> ImageIndex {
    var indexer = ImageIndexer()
    indexer.spanSize = spanSize
    return try indexer.index(try openImageSource("oci:\(directory):latest"))
  }

  @Test func indexesAndReadsThroughCheckpoints() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try OCILayoutWriter(directory: directory).image(layers: layers())
    let image = try index()
    #expect(image.layerIndexes.count == 2)
    #expect(image.layerIndexes[0].spanCount > 5)
    #expect(image.runConfig.cmd == ["/bin/sh"])
    let reader = try ImageReader(index: image, source: try openImageSource(image.source))
    #expect(reader.tree.lookup(Array("etc/hostname".utf8)) == nil)
    let big = try #require(reader.tree.lookup(Array("big".utf8)))
    var content: [UInt8] = []
    try reader.read(inode: reader.tree.nodes[Int(big)].inode, offset: 70_000, count: 200_000) { content += $0 }
    #expect(content == Array(testData(count: 600_000, seed: 5)[70_000..<270_000]))
    // Indexing again gives the same bytes.
    #expect(IndexFormat.encode(try index()) == IndexFormat.encode(image))
  }

  @Test func wrongLayerDigestNamesTheLayer() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let writer = try OCILayoutWriter(directory: directory)
    var bad = layers()
    bad[1].blob[bad[1].blob.count / 2] ^= 0xff  // bytes no longer match the digest the manifest names
    let digest = OCILayoutWriter.sha256(layers()[1].blob)
    try writer.image(layers: bad, manifestDigestOverride: { $0 == 1 ? digest : nil })
    try writer.blob(bad[1].blob)
    try FileManager.default.moveItem(
      atPath: directory + "/blobs/sha256/" + OCILayoutWriter.sha256(bad[1].blob).dropFirst(7),
      toPath: directory + "/blobs/sha256/" + digest.dropFirst(7))
    let error = try #require(throws: ClipError.self) { try index() }
    #expect(error.description.contains("layer 2 (\(digest))"))
  }

  @Test func wrongDiffIDIsAnError() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try OCILayoutWriter(directory: directory).image(
      layers: layers(), diffIDOverride: { $0 == 0 ? "sha256:" + String(repeating: "0", count: 64) : nil })
    let error = try #require(throws: ClipError.self) { try index() }
    #expect(error.code == .digestMismatch)
    #expect(error.description.contains("layer 1"))
  }

  @Test func tamperedSpanIsNeverServed() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let writer = try OCILayoutWriter(directory: directory)
    let layers = layers()
    try writer.image(layers: layers)
    let image = try index()
    // Corrupt the blob on disk after indexing: a lazy read must refuse the span.
    let path = directory + "/blobs/sha256/" + image.layers[0].digest.hex
    var blob = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
    try #require(image.layerIndexes[0].spanCount > 3)
    let span = image.layerIndexes[0].compressedRange(ofSpan: 3)
    blob[Int(span.lowerBound) + 10] ^= 1
    try Data(blob).write(to: URL(fileURLWithPath: path))
    let reader = try ImageReader(index: image, source: try openImageSource(image.source))
    let error = try #require(throws: ClipError.self) { try reader.span(layer: 0, span: 3) }
    #expect(error.code == .digestMismatch)
    #expect(error.description.contains("span 3"))
    _ = try reader.span(layer: 0, span: 0)
  }
}
