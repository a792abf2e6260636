import ClipArchive
import ClipCore
import ClipIndex
import ClipOCI
import ClipTestSupport
import Foundation
import Testing

@testable import ClipRuntime

@Suite struct RuntimeStateFilesTests {
  let root = FileManager.default.temporaryDirectory.path + "/clip-runtime-test-\(UUID().uuidString)"

  @Test func mountRootsAreToldWithoutTheMountTable() throws {
    defer { try? FileManager.default.removeItem(atPath: root) }
    try FileManager.default.createDirectory(atPath: root + "/plain", withIntermediateDirectories: true)
    #expect(HostMounts.status("/") == .live)
    #expect(HostMounts.status("/proc") == (HostMounts.mountpoints().contains("/proc") ? .live : .absent))
    #expect(HostMounts.status(root + "/plain") == .absent)
    #expect(HostMounts.status(root + "/missing") == .absent)
    #expect(!HostMounts.isMountpoint(root + "/plain"))
  }

  /// The hook keeps a published index after decoding only its image frame; a mount that fails on one it cannot read
  /// must not leave it in the index cache for every later start to fail on.
  @Test func aCachedIndexAMountCannotReadIsDropped() throws {
    defer { try? FileManager.default.removeItem(atPath: root) }
    let layout = try RuntimeLayout(root: root)
    let layer = LayerIndex(
      digest: Digest.of([1]), compression: .gzip, compressedSize: 10, uncompressedSize: 1024, diffID: Digest.of([2]),
      spanSize: 512 << 10, checkpoints: [Checkpoint(uncompressedOffset: 0, compressedOffset: 10)],
      spanDigests: [[UInt8](repeating: 7, count: 32)], entries: [])
    let image = ImageIndex(
      source: "docker://127.0.0.1:5000/x:1", manifestDigest: Digest.of([3]), manifestMediaType: MediaType.ociManifest,
      platform: Platform(os: "linux", architecture: "amd64"), configDigest: Digest.of([4]), runConfig: .init(),
      layers: [ImageLayer(mediaType: MediaType.ociLayerGzip, digest: layer.digest, size: 10, diffID: layer.diffID)],
      layerIndexes: [layer])
    let good = IndexFormat.encode(image)
    let layerFrame = IndexFormat.encode(layer)
    // The layer frame replaced by an intact frame (right checksum) whose payload is not a layer index.
    let forged = Array(good.dropLast(layerFrame.count)) + rawIndexFrame(kind: 2, payload: Array("not a layer".utf8))
    _ = try IndexFormat.decodeImageHeader(forged)

    let key = image.manifestDigest.hex
    let request = try #require(try ImageRequest(annotations: [Annotation.image: image.source]))
    let images = SharedImages(
      settings: HookSettings(layout: layout, cacheSize: "1G", keepWarm: 0),
      actions: HookActions(
        startMount: { _ in throw ClipError(.system, "the daemon exited before it was ready") }, attach: { _ in }),
      log: { _ in })
    for (bytes, kept) in [(good, true), (forged, false)] {
      try File.writeAtomically(layout.index(key), bytes)
      try File.writeAtomically(layout.profile(key), Array("profile".utf8))
      #expect(throws: ClipError.self) {
        try images.acquire(key: key, index: layout.index(key), request: request, container: "c1", keepWarm: 0)
      }
      #expect(FileManager.default.fileExists(atPath: layout.index(key)) == kept)
      #expect(FileManager.default.fileExists(atPath: layout.profile(key)) == kept)
    }
  }

  @Test func referenceRecordsAreReadOnlyForTheirOwnName() throws {
    defer { try? FileManager.default.removeItem(atPath: root) }
    let layout = try RuntimeLayout(root: root)
    let name = "docker://127.0.0.1:5000/debian:bookworm linux/amd64/"
    let path = layout.reference(name)
    #expect(path.hasPrefix(layout.references + "/"))
    #expect(path.count == layout.references.count + 17)  // 16 hex digits
    #expect(layout.reference(name) == path)
    #expect(layout.reference(name + "x") != path)
    try File.writeAtomically(path, Array("0123abcd\n\(name)".utf8))
    #expect(SharedImages.resolvedKey(path, name: name) == "0123abcd")
    #expect(SharedImages.resolvedKey(path, name: "docker://other linux/amd64/") == nil)  // a colliding name
    try File.writeAtomically(path, Array("0123abcd".utf8))  // a record of the older format
    #expect(SharedImages.resolvedKey(path, name: name) == nil)
  }
}
