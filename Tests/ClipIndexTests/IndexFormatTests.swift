import ClipArchive
import ClipCore
import ClipIndex
import ClipOCI
import ClipTestSupport
import Foundation
import Testing

func makeLayer(_ entries: [TarEntry], digestSeed: UInt8 = 1) throws -> LayerIndex {
  LayerIndex(
    digest: try Digest(sha256: [UInt8](repeating: digestSeed, count: 32)), compression: .gzip, compressedSize: 1000,
    uncompressedSize: 1 << 20, diffID: try Digest(sha256: [UInt8](repeating: digestSeed &+ 1, count: 32)),
    spanSize: 4 << 20,
    checkpoints: [
      Checkpoint(uncompressedOffset: 0, compressedOffset: 10),
      Checkpoint(
        uncompressedOffset: 5000, compressedOffset: 400, bits: 3,
        window: CheckpointWindow(testData(count: 32768, seed: 3)) { $0 % 5 < 2 }),
    ],
    spanDigests: [[UInt8](repeating: 7, count: 32), [UInt8](repeating: 8, count: 32)], entries: entries)
}

let sampleEntries: [TarEntry] = [
  TarEntry(path: Array("etc".utf8), kind: .directory, mode: 0o755, mtime: 1_600_000_000, mtimeNanoseconds: 5),
  TarEntry(path: Array("etc/passwd".utf8), kind: .regular, mode: 0o644, size: 100, mtime: -5, dataOffset: 512),
  TarEntry(
    path: Array("usr/bin/ping".utf8), kind: .regular, mode: 0o4755, uid: 1000, gid: 4_000_000, size: 7,
    xattrs: [ExtendedAttribute(name: "security.capability", value: [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0])],
    dataOffset: 2048),
  TarEntry(path: Array("bin/sh".utf8), kind: .symlink, linkTarget: Array("busybox".utf8)),
  TarEntry(path: Array("bin/ash".utf8), kind: .hardlink, linkTarget: Array("usr/bin/ping".utf8)),
  TarEntry(path: Array("dev/null".utf8), kind: .characterDevice, mode: 0o666, deviceMajor: 1, deviceMinor: 3),
  TarEntry(path: [0x63, 0x61, 0x66, 0xE9], kind: .fifo),
]

func makeImage() throws -> ImageIndex {
  let layers = [try makeLayer(sampleEntries), try makeLayer(Array(sampleEntries.prefix(2)), digestSeed: 9)]
  return ImageIndex(
    source: "oci:/images/test:latest", manifestDigest: try Digest(sha256: [UInt8](repeating: 3, count: 32)),
    manifestMediaType: MediaType.ociManifest, platform: Platform(os: "linux", architecture: "amd64"),
    configDigest: try Digest(sha256: [UInt8](repeating: 4, count: 32)),
    runConfig: .init(user: "1000:1000", env: ["PATH=/bin"], entrypoint: ["/bin/sh"], cmd: nil, workingDir: "/"),
    layers: layers.map {
      ImageLayer(mediaType: MediaType.ociLayerGzip, digest: $0.digest, size: $0.compressedSize, diffID: $0.diffID)
    }, layerIndexes: layers)
}

@Suite struct IndexFormatTests {
  @Test func roundTrip() throws {
    let image = try makeImage()
    let bytes = IndexFormat.encode(image)
    #expect(try IndexFormat.decodeImage(bytes) == image)
    let layerBytes = IndexFormat.encode(image.layerIndexes[0])
    #expect(try IndexFormat.decodeLayer(layerBytes) == image.layerIndexes[0])
  }

  @Test func neededLibrariesRoundTrip() throws {
    var layer = try makeLayer(sampleEntries)
    #expect(!layer.recordsNeededLibraries)
    #expect(try IndexFormat.decodeLayer(IndexFormat.encode(layer)) == layer)  // not recorded stays not recorded
    layer.recordsNeededLibraries = true
    #expect(try IndexFormat.decodeLayer(IndexFormat.encode(layer)) == layer)  // recorded, none
    layer.neededLibraries = [2: ["libcap.so.2", "libc.so.6"], 1: ["libc.so.6"]]
    let bytes = IndexFormat.encode(layer)
    #expect(try IndexFormat.decodeLayer(bytes) == layer)
    // Names pointing at an entry that is not a file of the layer are corrupt.
    layer.neededLibraries = [3: ["libc.so.6"]]  // bin/sh, a symlink
    let error = try #require(throws: ClipError.self) { try IndexFormat.decodeLayer(IndexFormat.encode(layer)) }
    #expect(error.code == .corrupt)
  }

  @Test func deterministicAndLayerFramesShared() throws {
    let image = try makeImage()
    let bytes = IndexFormat.encode(image)
    #expect(bytes == IndexFormat.encode(image))
    #expect(IndexFormat.encode(try IndexFormat.decodeImage(bytes)) == bytes)
    // A layer's frame is the same bytes wherever it appears.
    let layerFrame = IndexFormat.encode(image.layerIndexes[1])
    #expect(bytes.suffix(layerFrame.count).elementsEqual(layerFrame))
  }

  @Test func everyCorruptionIsReported() throws {
    var image = try makeImage()
    image.layerIndexes = [try makeLayer(Array(sampleEntries.prefix(3)))]
    image.layers = [image.layers[0]]
    let bytes = IndexFormat.encode(image)
    for position in stride(from: 0, to: bytes.count, by: 7) {
      var corrupt = bytes
      corrupt[position] ^= 0x41
      #expect(throws: ClipError.self) { try IndexFormat.decodeImage(corrupt) }
    }
    for length in stride(from: 0, to: bytes.count, by: 13) {
      let error = try #require(throws: ClipError.self) { try IndexFormat.decodeImage(Array(bytes.prefix(length))) }
      #expect(error.code == .corrupt)
    }
    let garbage = try #require(throws: ClipError.self) { try IndexFormat.decodeImage(Array("not an index".utf8)) }
    #expect(garbage.description.contains("corrupt index"))
  }

  @Test func headerDecodeChecksEveryFrameButDecodesOnlyTheImage() throws {
    let image = try makeImage()
    let bytes = IndexFormat.encode(image)
    var header = image
    header.layerIndexes = []
    #expect(try IndexFormat.decodeImageHeader(bytes) == header)
    for position in stride(from: 0, to: bytes.count, by: 7) {
      var corrupt = bytes
      corrupt[position] ^= 0x41
      #expect(throws: ClipError.self) { try IndexFormat.decodeImageHeader(corrupt) }
    }
    for length in stride(from: 0, to: bytes.count, by: 13) {
      #expect(throws: ClipError.self) { try IndexFormat.decodeImageHeader(Array(bytes.prefix(length))) }
    }
    #expect(throws: ClipError.self) {
      try IndexFormat.decodeImageHeader(bytes + IndexFormat.encode(image.layerIndexes[0]))
    }
    // An intact frame whose payload is not a layer index passes; decoding the whole file finds it.
    let lastFrame = IndexFormat.encode(image.layerIndexes[1])
    let forged = Array(bytes.dropLast(lastFrame.count)) + rawIndexFrame(kind: 2, payload: Array("not a layer".utf8))
    #expect(try IndexFormat.decodeImageHeader(forged) == header)
    let error = try #require(throws: ClipError.self) { try IndexFormat.decodeImage(forged) }
    #expect(error.code == .corrupt)
  }

  @Test func versionIsChecked() throws {
    var bytes = IndexFormat.encode(try makeImage())
    bytes[8] = 99
    let error = try #require(throws: ClipError.self) { try IndexFormat.decodeImage(bytes) }
    #expect(error.code == .unsupported)
  }

  @Test func readsVersion2() throws {
    // Written by clip with index format 2 (whole windows): busybox, 1 MiB spans.
    let url = try #require(
      Bundle.module.url(forResource: "busybox-v2", withExtension: "clip", subdirectory: "Fixtures"))
    let bytes = [UInt8](try Data(contentsOf: url))
    #expect(bytes[8] == 2, "the fixture is a version 2 file")
    let index = try IndexFormat.decodeImage(bytes)
    let layer = try #require(index.layerIndexes.first)
    #expect(layer.checkpoints.count == 2 && layer.spanPieces.count == 2 && layer.entries.count == 284)
    let window = layer.checkpoints[1].window
    #expect(window.count == deflateWindowSize && window.keptCount == deflateWindowSize, "a whole window")
    let rewritten = IndexFormat.encode(index)
    #expect(rewritten[8] == 4)
    #expect(!layer.recordsNeededLibraries)
    #expect(try IndexFormat.decodeImage(rewritten) == index)
  }
}
