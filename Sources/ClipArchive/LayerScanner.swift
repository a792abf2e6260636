import CIsal
import CZstd
import ClipCore
import ClipOCI

#if canImport(Glibc)
  import Glibc
#endif

/// Everything one streaming pass over a layer blob learns.
public struct LayerScan: Sendable {
  /// The compression that was decoded.
  public var compression: LayerCompression
  /// Bytes of the blob.
  public var compressedSize: UInt64
  /// Bytes of the tar stream.
  public var uncompressedSize: UInt64
  /// SHA-256 of the blob (the layer digest).
  public var digest: [UInt8]
  /// SHA-256 of the tar stream (the layer's diff ID).
  public var diffID: [UInt8]
  /// Where decoding can resume; the first is at the start of the data.
  public var checkpoints: [Checkpoint]
  /// SHA-256 of each span's compressed bytes (`spanRange(i)` of the blob).
  public var spanDigests: [[UInt8]]
  /// Compressed bytes per span piece; 0 when spans have no pieces.
  public var pieceSize: UInt64
  /// Each span's pieces (gzip; empty for other compressions).
  public var spanPieces: [SpanPieces]
  /// The tar entries in stream order.
  public var entries: [TarEntry]
  /// The shared libraries the layer's dynamically linked ELF files name (DT_NEEDED), by entry number.
  public var neededLibraries: [Int: [String]] = [:]
}

/// Reads a layer blob once, front to back: decompresses it, walks its tar stream, records checkpoints every
/// `spanSize` bytes of output and a digest of every span, and digests the blob and the tar stream.
///
/// Memory stays bounded (one input buffer, one output buffer, the worker's few chunk buffers, the windows of the last
/// few checkpoints) whatever the layer size.
public final class LayerScanner {
  /// Output bytes between checkpoints (a checkpoint is placed at the first possible point after this many bytes).
  public let spanSize: UInt64
  /// The compression the media type promises; checked against the blob's first bytes.
  public let compression: LayerCompression
  /// Called now and then with the number of blob bytes read so far.
  public var progress: ((UInt64) -> Void)?

  static let inputChunk = 1 << 20
  static let outputChunk = 1 << 20

  /// Creates a scanner.
  public init(compression: LayerCompression, spanSize: UInt64) {
    self.compression = compression
    self.spanSize = max(spanSize, 64 * 1024)
  }

  /// Scans the blob that `read` yields (it fills the buffer it is given and returns the count, 0 at the end).
  public func scan(_ read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws -> LayerScan {
    let pieceSize = compression == .gzip ? Self.pieceSize : 0
    let worker = ScanWorker(bufferSize: Self.outputChunk, pieceSize: pieceSize)
    defer { worker.close() }
    let input = CompressedInput(read: read, capacity: Self.inputChunk, worker: worker)
    input.progress = progress
    let output = OutputWindow(chunk: Self.outputChunk, worker: worker)
    var digest: [UInt8] = []
    var diffID: [UInt8] = []
    var entries: [TarEntry] = []
    var neededLibraries: [Int: [String]] = [:]
    let windows = WindowSparsifier()
    defer { windows.close() }
    var spans = SpanRecorder(spanSize: spanSize, pieceSize: pieceSize, windows: windows)
    input.pieceSize = spans.pieceSize
    defer { input.release(); output.release() }
    do {
      try input.fill()
      try checkMagic(input)
      switch compression {
      case .gzip: try scanGzip(input, output, &spans)
      case .zstd: try scanZstd(input, output, &spans)
      case .none: try scanPlain(input, output, &spans)
      }
      try output.flush()
      try spans.finish(input: input, output: output)
      let results = try worker.finish()
      (digest, diffID, entries) = (results.digest, results.diffID, results.entries)
      neededLibraries = results.neededLibraries
      spans.setDigests(results.spans)
    } catch let error as ClipError {
      if error.context.contains(where: { $0.hasPrefix("offset") || $0.contains("offset ") }) { throw error }
      throw error.adding("compressed offset \(input.consumedOffset)")
    }
    return LayerScan(
      compression: compression, compressedSize: input.consumedOffset + UInt64(input.available.count),
      uncompressedSize: output.total, digest: digest, diffID: diffID,
      checkpoints: spans.checkpoints, spanDigests: spans.digests, pieceSize: spans.pieceSize,
      spanPieces: spans.pieces, entries: entries, neededLibraries: neededLibraries)
  }

  private func checkMagic(_ input: CompressedInput) throws {
    let head = Array(input.available.prefix(4))
    let isGzip = head.starts(with: [0x1f, 0x8b])
    let isZstd =
      head == [0x28, 0xb5, 0x2f, 0xfd]
      || (head.count == 4 && head[0] & 0xf0 == 0x50 && Array(head[1...]) == [0x2a, 0x4d, 0x18])
    let found = isGzip ? "gzip" : isZstd ? "zstd" : "no compression magic"
    switch compression {
    case .gzip where !isGzip, .zstd where !isZstd, .none where isGzip || isZstd:
      throw ClipError(.corrupt, "the media type says \(compression) but the blob starts with \(found)")
    default: return
    }
  }

  // MARK: - gzip

  /// Input bytes fed per call once a checkpoint is due, coarsest first. The decoder runs on from a copy of its state;
  /// a stretch in which a block ended (its Huffman tables changed, or it is no longer in a coded block) is fed again
  /// in smaller pieces, down to a few bytes, so that the decoder stops right after the block ends (waiting for the
  /// next block header) and the boundary can be read off its state.
  static let probeChunks = [4096, 512, 64, 16]
  /// Bytes of the literal/length decode table compared to tell that a new block's header was read.
  static let tableFingerprint = 512

  /// Compressed bytes per span piece (gzip): the unit a read near the start of a span fetches and verifies.
  public static let pieceSize: UInt64 = 64 * 1024
  /// Input bytes fed per call otherwise: how finely the pieces' reach is known.
  static let markChunk = 16 * 1024

  /// gzip with ISA-L's inflate (several times zlib's speed). ISA-L has no Z_BLOCK, so block boundaries are found
  /// this way: once a checkpoint is due, input is fed a few bytes at a time; when the decoder returns waiting for a
  /// block header, the boundary is exactly where its unread bits start. Members are parsed here, one by one.
  private func scanGzip(_ input: CompressedInput, _ output: OutputWindow, _ spans: inout SpanRecorder) throws {
    let state = UnsafeMutablePointer<inflate_state>.allocate(capacity: 1)
    let saved = UnsafeMutablePointer<inflate_state>.allocate(capacity: 1)
    defer {
      state.deallocate()
      saved.deallocate()
    }
    let tableOffset = MemoryLayout<inflate_state>.offset(of: \.lit_huff_code) ?? 0
    func tablesDiffer() -> Bool {
      memcmp(
        UnsafeRawPointer(state) + tableOffset, UnsafeRawPointer(saved) + tableOffset, Self.tableFingerprint) != 0
    }
    var probeLevel = 0
    var members = 0
    while true {
      // Member header (after the first member: the end of the blob, zero padding, or another member).
      var headerLength: Int? = nil
      while true {
        if members > 0, input.available.isEmpty || input.available.allSatisfy({ $0 == 0 }) {
          if try input.atEnd() {
            input.consumeAll()
            return
          }
          if input.available.isEmpty { try input.fill() }
          continue
        }
        headerLength = try GzipMember.headerLength(input.available)
        if headerLength != nil { break }
        guard try input.fill() else { throw ClipError(.corrupt, "gzip stream ends inside a member header") }
      }
      input.consume(headerLength ?? 0)
      members += 1
      isal_inflate_init(state)
      state.pointee.crc_flag = UInt32(ISAL_DEFLATE)
      var memberOut: UInt64 = 0
      var crc: UInt32 = 0
      try spans.maybeCheckpoint(at: input.consumedOffset, bits: 0, output: output, window: 0, input: input)

      // Deflate data.
      while true {
        if input.available.isEmpty {
          guard try input.fill() else { throw ClipError(.corrupt, "gzip stream is truncated") }
        }
        // Stop producing where the next checkpoint is due, then probe for the next block boundary.
        let untilCheckpoint = spans.untilNextCheckpoint(output: output)
        let probing = untilCheckpoint == 0
        if !probing { probeLevel = 0 }
        let coarse = probing && probeLevel < Self.probeChunks.count - 1
        if coarse { saved.update(from: state, count: 1) }
        let source = input.available
        let feed = min(source.count, probing ? Self.probeChunks[probeLevel] : Self.markChunk)
        let space = UnsafeMutableRawBufferPointer(
          rebasing: output.space.prefix(
            probing ? output.space.count : Int(min(untilCheckpoint, UInt64(output.space.count)))))
        state.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: UInt8.self))
        state.pointee.avail_in = UInt32(feed)
        state.pointee.next_out = space.baseAddress?.assumingMemoryBound(to: UInt8.self)
        state.pointee.avail_out = UInt32(space.count)
        let result = isal_inflate(state)
        if coarse, result >= 0, state.pointee.block_state != ISAL_BLOCK_FINISH {
          let waitingAtEnd =
            state.pointee.avail_in == 0 && state.pointee.tmp_out_valid - state.pointee.tmp_out_processed <= 0
            && (state.pointee.block_state == ISAL_BLOCK_NEW_HDR || state.pointee.block_state == ISAL_BLOCK_HDR)
          if !waitingAtEnd && (state.pointee.block_state != ISAL_BLOCK_CODED || tablesDiffer()) {
            // A block ended in this stretch: decode it again in smaller pieces.
            state.update(from: saved, count: 1)
            probeLevel += 1
            continue
          }
        }
        let consumed = feed - Int(state.pointee.avail_in)
        let produced = space.count - Int(state.pointee.avail_out)
        input.consume(consumed)
        output.produced(produced)
        spans.mark(consumed: input.consumedOffset, produced: output.total)
        spans.sparsifyWindow(output: output, input: input)
        memberOut += UInt64(produced)
        if produced > 0, let written = space.baseAddress?.assumingMemoryBound(to: UInt8.self) {
          crc = crc32_gzip_refl(crc, written, UInt64(produced))
        }
        guard result >= 0 else { throw ClipError(.corrupt, "corrupt gzip data: \(Self.isalError(result))") }
        let blockState = state.pointee.block_state
        if blockState == ISAL_BLOCK_FINISH {
          // The deflate data ends at a byte boundary after its last block: rewind to the trailer.
          let bit = Int64(input.consumedOffset) * 8 - Int64(state.pointee.read_in_length)
          try input.rewind(to: UInt64((bit + 7) / 8))
          break
        }
        let pendingOutput = state.pointee.tmp_out_valid - state.pointee.tmp_out_processed
        if probing, state.pointee.avail_in == 0, pendingOutput <= 0,
          blockState == ISAL_BLOCK_NEW_HDR || blockState == ISAL_BLOCK_HDR
        {
          // Waiting for a header: the block boundary is where the unread bits (register + saved header bytes) start.
          let bit =
            (Int64(input.consumedOffset) - Int64(state.pointee.tmp_in_size)) * 8 - Int64(state.pointee.read_in_length)
          try spans.maybeCheckpoint(
            at: UInt64((bit + 7) / 8), bits: UInt8((8 - bit % 8) % 8), output: output,
            window: Int(min(memberOut, UInt64(deflateWindowSize))), input: input)
        }
        if output.space.count < 64 * 1024 { try output.flush() }
      }

      // Member trailer.
      while input.available.count < GzipMember.trailerSize {
        guard try input.fill() else { throw ClipError(.corrupt, "gzip stream ends inside a member trailer") }
      }
      let trailer = UnsafeRawBufferPointer(rebasing: input.available.prefix(8))
      guard GzipMember.crc(trailer) == crc else {
        throw ClipError(.corrupt, "gzip member checksum does not match its data (CRC-32 in the trailer is wrong)")
      }
      guard GzipMember.isize(trailer) == UInt32(truncatingIfNeeded: memberOut) else {
        throw ClipError(
          .corrupt, "gzip member length \(memberOut) does not match its trailer (\(GzipMember.isize(trailer)))")
      }
      input.consume(GzipMember.trailerSize)
    }
  }

  static func isalError(_ code: Int32) -> String {
    switch code {
    case ISAL_INVALID_BLOCK: "invalid deflate block"
    case ISAL_INVALID_SYMBOL: "invalid deflate symbol"
    case ISAL_INVALID_LOOKBACK: "back-reference before the start of the data"
    default: "ISA-L error \(code)"
    }
  }

  // MARK: - zstd

  private func scanZstd(_ input: CompressedInput, _ output: OutputWindow, _ spans: inout SpanRecorder) throws {
    guard let context = ZSTD_createDCtx() else { throw ClipError(.system, "zstd: out of memory") }
    defer { ZSTD_freeDCtx(context) }
    try spans.maybeCheckpoint(at: 0, bits: 0, output: output, window: 0, input: input)
    var frameComplete = true
    while true {
      if input.available.isEmpty {
        guard try input.fill() else {
          if frameComplete { return }
          throw ClipError(.corrupt, "zstd stream is truncated")
        }
      }
      let space = output.space
      let source = input.available
      let (consumed, produced, result) = {
        var inBuffer = ZSTD_inBuffer(src: source.baseAddress, size: source.count, pos: 0)
        var outBuffer = ZSTD_outBuffer(dst: space.baseAddress, size: space.count, pos: 0)
        let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
        return (inBuffer.pos, outBuffer.pos, result)
      }()
      if ZSTD_isError(result) != 0 {
        throw ClipError(.corrupt, "corrupt zstd data: \(String(cString: ZSTD_getErrorName(result)))")
      }
      input.consume(consumed)
      output.produced(produced)
      frameComplete = result == 0
      if frameComplete {
        try spans.maybeCheckpoint(at: input.consumedOffset, bits: 0, output: output, window: 0, input: input)
      }
      if output.space.isEmpty { try output.flush() }
    }
  }

  // MARK: - uncompressed

  private func scanPlain(_ input: CompressedInput, _ output: OutputWindow, _ spans: inout SpanRecorder) throws {
    try spans.maybeCheckpoint(at: 0, bits: 0, output: output, window: 0, input: input)
    while true {
      if input.available.isEmpty {
        guard try input.fill() else { return }
      }
      let space = output.space
      let count = min(space.count, input.available.count, Int(spans.untilNextCheckpoint(output: output)))
      if let from = input.available.baseAddress { space.baseAddress?.copyMemory(from: from, byteCount: count) }
      input.consume(count)
      output.produced(count)
      try spans.maybeCheckpoint(at: input.consumedOffset, bits: 0, output: output, window: 0, input: input)
      if output.space.isEmpty { try output.flush() }
    }
  }
}
