/// A point where decoding of a layer can start without reading what comes before it.
///
/// For gzip it is a deflate block boundary (zlib's zran technique): the compressed byte offset, the number of bits of
/// the previous byte that still belong to the next block, and the last 32 KiB of output, which later back-references
/// may reach (of which only the bytes the span's back-references read are kept: `CheckpointWindow`). For zstd it is a
/// frame start, for an uncompressed tar any offset; neither needs bits or a window.
public struct Checkpoint: Sendable, Equatable {
  /// Offset in the uncompressed stream.
  public var uncompressedOffset: UInt64
  /// Offset of the first whole compressed byte after the boundary.
  public var compressedOffset: UInt64
  /// How many high bits of the byte before `compressedOffset` belong to the data after the boundary (0–7).
  public var bits: UInt8
  /// The (up to) 32 KiB of uncompressed data before the boundary; empty where no history is needed.
  public var window: CheckpointWindow

  /// Creates a checkpoint.
  public init(
    uncompressedOffset: UInt64, compressedOffset: UInt64, bits: UInt8 = 0, window: CheckpointWindow = .empty
  ) {
    self.uncompressedOffset = uncompressedOffset
    self.compressedOffset = compressedOffset
    self.bits = bits
    self.window = window
  }

  /// The first compressed byte needed to resume here (one earlier when the boundary falls inside a byte).
  public var compressedStart: UInt64 { compressedOffset - (bits > 0 ? 1 : 0) }
}

/// The size of a deflate window: how far back a match may reach.
public let deflateWindowSize = 32 * 1024

/// The history a gzip checkpoint needs: a window of `count` bytes (at most 32 KiB) of which only some runs are kept.
///
/// Decoding a span reads few of its window's bytes (about a tenth in real layers): only the first 32 KiB of a span's
/// output can reach back into the window, and later bytes copy those. The scanner finds which bytes are read and keeps
/// just them; every other byte is zero, which no decode of the span reads. The kept runs are stored packed: per run a
/// u16 LE gap after the previous run, a u16 LE length, then the bytes.
public struct CheckpointWindow: Sendable, Equatable {
  /// The window's length: the decoder sees it as the last `count` bytes before the checkpoint.
  public let count: Int
  /// The kept runs, packed.
  public let packed: [UInt8]

  /// No history.
  public static let empty = CheckpointWindow(uncheckedCount: 0, packed: [])

  /// Gaps this short between kept runs are kept too (a run costs 4 bytes).
  static let shortestGap = 4

  private init(uncheckedCount count: Int, packed: [UInt8]) {
    self.count = count
    self.packed = packed
  }

  /// A window that keeps every byte.
  public init(_ bytes: [UInt8]) { self.init(bytes, keeping: { _ in true }) }

  /// A window that keeps the bytes at the offsets for which `keep` is true (and short gaps between them).
  public init(_ bytes: [UInt8], keeping keep: (Int) -> Bool) {
    var runs: [Range<Int>] = []
    var offset = 0
    while offset < bytes.count {
      guard keep(offset) else {
        offset += 1
        continue
      }
      var end = offset + 1
      while end < bytes.count, keep(end) { end += 1 }
      if let last = runs.last, offset - last.upperBound <= Self.shortestGap {
        runs[runs.count - 1] = last.lowerBound..<end
      } else {
        runs.append(offset..<end)
      }
      offset = end
    }
    var packed: [UInt8] = []
    packed.reserveCapacity(runs.reduce(0) { $0 + $1.count + 4 })
    var previousEnd = 0
    for run in runs {
      for value in [run.lowerBound - previousEnd, run.count] {
        packed.append(UInt8(value & 0xff))
        packed.append(UInt8(value >> 8))
      }
      packed += bytes[run]
      previousEnd = run.upperBound
    }
    self.init(uncheckedCount: bytes.count, packed: packed)
  }

  /// A window read from an index; nil when the runs do not fit `count` bytes or `count` exceeds 32 KiB.
  public init?(count: Int, packed: [UInt8]) {
    guard count <= deflateWindowSize else { return nil }
    var position = 0
    var end = 0
    while position < packed.count {
      guard packed.count - position >= 4 else { return nil }
      let gap = Int(packed[position]) | Int(packed[position + 1]) << 8
      let length = Int(packed[position + 2]) | Int(packed[position + 3]) << 8
      position += 4 + length
      end += gap + length
      guard length > 0, position <= packed.count, end <= count else { return nil }
    }
    self.init(uncheckedCount: count, packed: packed)
  }

  /// True when there is no history.
  public var isEmpty: Bool { count == 0 }

  /// How many bytes the runs keep.
  public var keptCount: Int {
    var kept = 0
    forEachRun { _, bytes in kept += bytes.count }
    return kept
  }

  /// The whole window, unkept bytes as zero.
  public var bytes: [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    forEachRun { offset, run in bytes.replaceSubrange(offset..<offset + run.count, with: run) }
    return bytes
  }

  private func forEachRun(_ body: (Int, ArraySlice<UInt8>) -> Void) {
    var position = 0
    var end = 0
    while position + 4 <= packed.count {
      let gap = Int(packed[position]) | Int(packed[position + 1]) << 8
      let length = Int(packed[position + 2]) | Int(packed[position + 3]) << 8
      body(end + gap, packed[(position + 4)..<(position + 4 + length)])
      position += 4 + length
      end += gap + length
    }
  }
}

/// A gzip span cut into pieces of `pieceSize` compressed bytes from its start (the last one shorter), each with its
/// own digest, so that a read near the start of a span fetches and verifies only the pieces it needs: decoding from
/// the span's checkpoint with pieces `0...k` produces the tar stream up to `reach[k]` (the last piece reaches the end
/// of the span).
public struct SpanPieces: Sendable, Equatable {
  /// Tar-stream offset decodable with pieces `0...k`, for each `k`; never decreasing.
  public var reach: [UInt64]
  /// SHA-256 of each piece's compressed bytes.
  public var digests: [[UInt8]]

  /// Creates the pieces of a span.
  public init(reach: [UInt64], digests: [[UInt8]]) {
    self.reach = reach
    self.digests = digests
  }
}
