/// A point where decoding of a layer can start without reading what comes before it.
///
/// For gzip it is a deflate block boundary (zlib's zran technique): the compressed byte offset, the number of bits of
/// the previous byte that still belong to the next block, and the last 32 KiB of output, which later back-references
/// may reach. For zstd it is a frame start, for an uncompressed tar any offset; neither needs bits or a window.
public struct Checkpoint: Sendable, Equatable {
  /// Offset in the uncompressed stream.
  public var uncompressedOffset: UInt64
  /// Offset of the first whole compressed byte after the boundary.
  public var compressedOffset: UInt64
  /// How many high bits of the byte before `compressedOffset` belong to the data after the boundary (0–7).
  public var bits: UInt8
  /// The (up to) 32 KiB of uncompressed data before the boundary; empty where no history is needed.
  public var window: [UInt8]

  /// Creates a checkpoint.
  public init(uncompressedOffset: UInt64, compressedOffset: UInt64, bits: UInt8 = 0, window: [UInt8] = []) {
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
