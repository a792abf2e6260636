import ClipArchive
import ClipCore
import ClipOCI

/// The index of one layer blob: where decoding can resume, a digest of every span, and every tar entry with the
/// offset of its data. It depends only on the blob (and the span size), so it is keyed by the layer digest and shared
/// by every image containing that layer.
public struct LayerIndex: Sendable, Equatable {
  /// The digest of the layer blob.
  public var digest: Digest
  /// How the blob is compressed.
  public var compression: LayerCompression
  /// Size of the blob.
  public var compressedSize: UInt64
  /// Size of the tar stream.
  public var uncompressedSize: UInt64
  /// Digest of the tar stream.
  public var diffID: Digest
  /// The span size the checkpoints were placed with.
  public var spanSize: UInt64
  /// Resume points, first at the start of the data; span `i` runs from checkpoint `i` to checkpoint `i + 1`.
  public var checkpoints: [Checkpoint]
  /// SHA-256 of each span's compressed bytes (`compressedRange(ofSpan:)`).
  public var spanDigests: [[UInt8]]
  /// Compressed bytes per span piece; 0 when spans have no pieces.
  public var pieceSize: UInt64
  /// Each span's pieces, for reads that need only the start of a span (gzip layers; empty otherwise).
  public var spanPieces: [SpanPieces]
  /// The tar entries in stream order.
  public var entries: [TarEntry]
  /// The shared libraries the layer's dynamically linked ELF files name (DT_NEEDED), by entry number; files that
  /// name none are left out.
  public var neededLibraries: [Int: [String]]
  /// Whether `neededLibraries` was recorded (format 4 and later): if not, a program's libraries are only known by
  /// reading its headers.
  public var recordsNeededLibraries: Bool

  /// Creates a layer index.
  public init(
    digest: Digest, compression: LayerCompression, compressedSize: UInt64, uncompressedSize: UInt64,
    diffID: Digest, spanSize: UInt64, checkpoints: [Checkpoint], spanDigests: [[UInt8]],
    pieceSize: UInt64 = 0, spanPieces: [SpanPieces] = [], entries: [TarEntry],
    neededLibraries: [Int: [String]]? = nil
  ) {
    self.digest = digest
    self.compression = compression
    self.compressedSize = compressedSize
    self.uncompressedSize = uncompressedSize
    self.diffID = diffID
    self.spanSize = spanSize
    self.checkpoints = checkpoints
    self.spanDigests = spanDigests
    self.pieceSize = spanPieces.isEmpty ? 0 : pieceSize
    self.spanPieces = spanPieces
    self.entries = entries
    self.neededLibraries = neededLibraries ?? [:]
    self.recordsNeededLibraries = neededLibraries != nil
  }

  /// Builds the index from a scan, checking the scan's digests against the ones the manifest promised.
  public init(scan: LayerScan, digest expected: Digest, diffID expectedDiffID: Digest?, spanSize: UInt64) throws {
    let digest = try Digest(sha256: scan.digest)
    guard digest == expected else {
      throw ClipError(.digestMismatch, "layer blob digest is \(digest), not the \(expected) the manifest names")
    }
    let diffID = try Digest(sha256: scan.diffID)
    if let expectedDiffID, diffID != expectedDiffID {
      throw ClipError(
        .digestMismatch, "uncompressed layer digest is \(diffID), not the diff ID \(expectedDiffID) of the config")
    }
    self.init(
      digest: digest, compression: scan.compression, compressedSize: scan.compressedSize,
      uncompressedSize: scan.uncompressedSize, diffID: diffID, spanSize: spanSize, checkpoints: scan.checkpoints,
      spanDigests: scan.spanDigests, pieceSize: scan.pieceSize, spanPieces: scan.spanPieces,
      entries: scan.entries, neededLibraries: scan.neededLibraries)
  }

  /// Number of spans.
  public var spanCount: Int { checkpoints.count }

  /// The tar-stream bytes span `i` covers.
  public func uncompressedRange(ofSpan i: Int) -> Range<UInt64> {
    let end = i + 1 < checkpoints.count ? checkpoints[i + 1].uncompressedOffset : uncompressedSize
    return checkpoints[i].uncompressedOffset..<end
  }

  /// The blob bytes needed to decode span `i`: from its checkpoint to the next one.
  public func compressedRange(ofSpan i: Int) -> Range<UInt64> {
    let end = i + 1 < checkpoints.count ? checkpoints[i + 1].compressedOffset : compressedSize
    return checkpoints[i].compressedStart..<end
  }

  /// The shortest start of span `i` that decodes the tar stream up to `end`: how many pieces, their compressed
  /// bytes, and the tar-stream offset they reach. Nil when only the whole span does (or the span has no pieces).
  public func prefix(ofSpan i: Int, reaching end: UInt64) -> (pieces: Int, compressed: Range<UInt64>, reach: UInt64)? {
    guard i < spanPieces.count, pieceSize > 0 else { return nil }
    let reach = spanPieces[i].reach
    guard let k = reach.firstIndex(where: { $0 >= end }), k + 1 < reach.count else { return nil }
    let start = compressedRange(ofSpan: i).lowerBound
    return (k + 1, start..<start + UInt64(k + 1) * pieceSize, reach[k])
  }

  /// The span holding tar-stream offset `offset` (the last span for offsets at or past the end).
  public func span(containing offset: UInt64) -> Int {
    var low = 0
    var high = checkpoints.count - 1
    while low < high {
      let mid = (low + high + 1) / 2
      if checkpoints[mid].uncompressedOffset <= offset { low = mid } else { high = mid - 1 }
    }
    return low
  }
}
