import ClipArchive
import ClipCore
import ClipOCI
import ClipTestSupport
import Testing

@Suite struct LayerScannerTests {
  func scan(_ blob: [UInt8], _ compression: LayerCompression, spanSize: UInt64 = 64 * 1024, chunk: Int = 100_000)
    throws -> LayerScan
  {
    var offset = 0
    return try LayerScanner(compression: compression, spanSize: spanSize).scan { buffer in
      let n = min(buffer.count, blob.count - offset, chunk)
      blob.withUnsafeBytes { source in
        if n > 0, let from = source.baseAddress { buffer.baseAddress?.copyMemory(from: from + offset, byteCount: n) }
      }
      offset += n
      return n
    }
  }

  func layer(files: Int, size: Int) -> [UInt8] {
    var tar = TarBuilder()
    for i in 0..<files { tar.add("dir/file\(i)", data: testData(count: size, seed: UInt64(i))) }
    return tar.finish()
  }

  /// Decodes every span from its checkpoint and compares it with the tar stream.
  func checkEverySpan(_ scan: LayerScan, blob: [UInt8], tar: [UInt8]) throws {
    #expect(scan.uncompressedSize == UInt64(tar.count))
    #expect(scan.diffID == SHA256.hash(tar))
    #expect(scan.digest == SHA256.hash(blob))
    #expect(scan.spanDigests.count == scan.checkpoints.count)
    for (i, point) in scan.checkpoints.enumerated() {
      let end = i + 1 < scan.checkpoints.count ? scan.checkpoints[i + 1] : nil
      let compressed = Array(blob[Int(point.compressedStart)..<Int(end?.compressedOffset ?? UInt64(blob.count))])
      #expect(SHA256.hash(compressed) == scan.spanDigests[i], "span \(i) digest")
      let outEnd = Int(end?.uncompressedOffset ?? UInt64(tar.count))
      let decoded = try compressed.withUnsafeBytes {
        try SpanDecoder.decode(
          scan.compression, from: point, compressed: $0, count: outEnd - Int(point.uncompressedOffset))
      }
      #expect(decoded == Array(tar[Int(point.uncompressedOffset)..<outEnd]), "span \(i) content")
    }
  }

  @Test func gzipCheckpointsAtEveryBitOffset() throws {
    let tar = layer(files: 40, size: 100_000)
    var bitsSeen = Set<UInt8>()
    for level: Int32 in [1, 6, 9] {
      let blob = Compress.gzip(tar, level: level)
      let result = try scan(blob, .gzip)
      #expect(result.checkpoints.count > 20)
      bitsSeen.formUnion(result.checkpoints.dropFirst().map(\.bits))
      try checkEverySpan(result, blob: blob, tar: tar)
      #expect(result.entries.count == 40)
    }
    #expect(bitsSeen == Set(0...7), "checkpoints were tested at bit offsets \(bitsSeen.sorted())")
  }

  @Test func windowsKeepOnlyWhatTheirSpansRead() throws {
    // Spans whose start is a run of repeats of the window's last bytes: only those bytes are read.
    var tar = TarBuilder()
    for i in 0..<12 {
      tar.add("random\(i)", data: testData(count: 70_000, seed: UInt64(i)).map { $0 &* 37 &+ UInt8(i) })
      tar.add("zeros\(i)", data: [UInt8](repeating: 0, count: 50_000))
    }
    let layer = tar.finish()
    let blob = Compress.gzip(layer, level: 6)
    let result = try scan(blob, .gzip)
    try checkEverySpan(result, blob: blob, tar: layer)
    let windows = result.checkpoints.map(\.window).filter { !$0.isEmpty }
    #expect(windows.count > 5)
    let kept = windows.reduce(0) { $0 + $1.keptCount }
    let whole = windows.reduce(0) { $0 + $1.count }
    #expect(kept < whole / 2, "windows keep \(kept) of \(whole) bytes")
  }

  @Test func checkpointWindowRuns() throws {
    let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7 + 1) }
    let kept: Set<Int> = [0, 1, 2, 10, 12, 500, 998, 999]
    let window = CheckpointWindow(bytes) { kept.contains($0) }
    #expect(window.count == 1000)
    let expanded = window.bytes
    for offset in kept { #expect(expanded[offset] == bytes[offset]) }
    #expect(expanded[300] == 0 && expanded[11] == bytes[11], "short gaps are kept, long ones dropped")
    #expect(window.keptCount == 3 + 3 + 1 + 2)
    #expect(CheckpointWindow(count: 1000, packed: window.packed) == window)
    #expect(CheckpointWindow(count: 999, packed: window.packed) == nil, "runs past the window's end")
    #expect(CheckpointWindow(count: 1000, packed: Array(window.packed.dropLast())) == nil, "truncated run")
    #expect(CheckpointWindow(count: 40000, packed: []) == nil, "longer than a deflate window")
    #expect(CheckpointWindow(bytes).bytes == bytes)
  }

  @Test func indexDoesNotDependOnHowTheSourceChunksTheBlob() throws {
    let tar = layer(files: 30, size: 80_000)
    let blob = Compress.gzip(tar)
    let reference = try scan(blob, .gzip)
    for chunk in [1, 997, 65536, 1 << 22] {
      let other = try scan(blob, .gzip, chunk: chunk)
      #expect(other.checkpoints == reference.checkpoints, "chunk \(chunk)")
      #expect(other.spanDigests == reference.spanDigests)
      #expect(other.entries == reference.entries)
    }
  }

  @Test func multiMemberGzip() throws {
    let tar = layer(files: 12, size: 60_000)
    let cuts = [0, 1000, 200_000, 450_000, tar.count]
    var blob: [UInt8] = []
    for i in 0..<cuts.count - 1 { blob += Compress.gzip(Array(tar[cuts[i]..<cuts[i + 1]])) }
    let result = try scan(blob, .gzip)
    try checkEverySpan(result, blob: blob, tar: tar)
    #expect(result.entries.count == 12)
  }

  @Test func zstdFramesBecomeCheckpoints() throws {
    let tar = layer(files: 20, size: 50_000)
    let blob = Compress.zstd(tar, frameSize: 100_000)
    let result = try scan(blob, .zstd)
    #expect(result.checkpoints.count >= 5)
    try checkEverySpan(result, blob: blob, tar: tar)
  }

  @Test func uncompressedTar() throws {
    let tar = layer(files: 10, size: 30_000)
    let result = try scan(tar, .none)
    #expect(result.checkpoints.count == (tar.count + 65535) / 65536)
    try checkEverySpan(result, blob: tar, tar: tar)
  }

  @Test func mediaTypeMustMatchMagic() throws {
    let tar = layer(files: 1, size: 10)
    let error = try #require(throws: ClipError.self) { try scan(tar, .gzip) }
    #expect(error.message.contains("media type says gzip"))
    #expect(throws: ClipError.self) { try scan(Compress.gzip(tar), .zstd) }
    #expect(throws: ClipError.self) { try scan(Compress.gzip(tar), .none) }
  }

  @Test func truncatedAndCorruptGzip() throws {
    let tar = layer(files: 5, size: 50_000)
    let blob = Compress.gzip(tar)
    let truncated = try #require(throws: ClipError.self) { try scan(Array(blob.prefix(blob.count / 2)), .gzip) }
    #expect(truncated.message.contains("truncated"))
    var corrupt = blob
    for i in stride(from: 100, to: 200, by: 1) { corrupt[i] ^= 0x5a }
    let error = try #require(throws: ClipError.self) { try scan(corrupt, .gzip) }
    #expect(error.code == .corrupt)
    #expect(error.description.contains("offset"))
  }
}
