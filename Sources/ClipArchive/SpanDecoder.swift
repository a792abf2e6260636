import CClipShims
import CZlib
import CZstd
import ClipCore
import ClipOCI

/// Decodes part of a layer starting at a checkpoint, from the compressed bytes that follow it.
public enum SpanDecoder {
  /// Decodes `output.count` bytes of the tar stream starting at `checkpoint`.
  ///
  /// - Parameter compressed: the blob bytes from `checkpoint.compressedStart` on, at least up to where the wanted
  ///   output ends (a span's compressed range).
  public static func decode(
    _ compression: LayerCompression, from checkpoint: Checkpoint, compressed: UnsafeRawBufferPointer,
    into output: UnsafeMutableRawBufferPointer
  ) throws {
    guard output.count > 0 else { return }
    switch compression {
    case .gzip: try inflate(checkpoint, compressed, output)
    case .zstd: try decompressZstd(compressed, output)
    case .none:
      guard compressed.count >= output.count, let source = compressed.baseAddress else {
        throw ClipError(.corrupt, "span is shorter than its data")
      }
      output.baseAddress?.copyMemory(from: source, byteCount: output.count)
    }
  }

  /// Decodes into a new array of `count` bytes.
  public static func decode(
    _ compression: LayerCompression, from checkpoint: Checkpoint, compressed: UnsafeRawBufferPointer, count: Int
  ) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    try bytes.withUnsafeMutableBytes { try decode(compression, from: checkpoint, compressed: compressed, into: $0) }
    return bytes
  }

  private static func inflate(
    _ checkpoint: Checkpoint, _ compressed: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer
  ) throws {
    var stream = z_stream()
    guard clip_inflate_init_raw(&stream) == Z_OK else { throw ClipError(.system, "zlib: inflateInit failed") }
    defer { inflateEnd(&stream) }
    var input = compressed[...]
    if checkpoint.bits > 0 {
      guard let first = input.first else { throw ClipError(.corrupt, "empty span") }
      let bits = Int32(checkpoint.bits)
      inflatePrime(&stream, bits, Int32(first >> (8 - checkpoint.bits)))
      input = input.dropFirst()
    }
    if !checkpoint.window.isEmpty {
      let result = checkpoint.window.withUnsafeBufferPointer {
        inflateSetDictionary(&stream, $0.baseAddress, UInt32($0.count))
      }
      guard result == Z_OK else { throw ClipError(.corrupt, "checkpoint window rejected by zlib") }
    }
    var produced = 0
    while produced < output.count {
      let source = UnsafeRawBufferPointer(rebasing: input)
      stream.next_in = UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: Bytef.self))
      stream.avail_in = UInt32(source.count)
      stream.next_out = (output.baseAddress.map { $0 + produced })?.assumingMemoryBound(to: Bytef.self)
      stream.avail_out = UInt32(output.count - produced)
      let result = CZlib.inflate(&stream, Z_NO_FLUSH)
      let consumed = source.count - Int(stream.avail_in)
      input = input.dropFirst(consumed)
      produced = output.count - Int(stream.avail_out)
      switch result {
      case Z_OK:
        continue
      case Z_STREAM_END:
        guard produced < output.count else { return }
        // The next gzip member: skip this one's trailer and the next one's header.
        guard input.count > GzipMember.trailerSize,
          let header = try GzipMember.headerLength(
            UnsafeRawBufferPointer(rebasing: input.dropFirst(GzipMember.trailerSize)))
        else { throw ClipError(.corrupt, "span ends between gzip members") }
        input = input.dropFirst(GzipMember.trailerSize + header)
        inflateReset(&stream)
      case Z_BUF_ERROR where input.isEmpty:
        throw ClipError(.corrupt, "span ends \(output.count - produced) bytes before its data does")
      default:
        let reason = stream.msg.map { String(cString: $0) } ?? "error \(result)"
        throw ClipError(.corrupt, "corrupt gzip data: \(reason)")
      }
    }
  }

  private static func decompressZstd(_ compressed: UnsafeRawBufferPointer, _ output: UnsafeMutableRawBufferPointer)
    throws
  {
    guard let context = ZSTD_createDCtx() else { throw ClipError(.system, "zstd: out of memory") }
    defer { ZSTD_freeDCtx(context) }
    var inBuffer = ZSTD_inBuffer(src: compressed.baseAddress, size: compressed.count, pos: 0)
    var outBuffer = ZSTD_outBuffer(dst: output.baseAddress, size: output.count, pos: 0)
    while outBuffer.pos < outBuffer.size {
      let before = (inBuffer.pos, outBuffer.pos)
      let result = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
      if ZSTD_isError(result) != 0 {
        throw ClipError(.corrupt, "corrupt zstd data: \(String(cString: ZSTD_getErrorName(result)))")
      }
      if before == (inBuffer.pos, outBuffer.pos) {
        throw ClipError(.corrupt, "span ends \(outBuffer.size - outBuffer.pos) bytes before its data does")
      }
    }
  }
}
