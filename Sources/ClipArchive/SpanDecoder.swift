import CIsal
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
    case .gzip:
      let state = UnsafeMutablePointer<inflate_state>.allocate(capacity: 1)
      defer { state.deallocate() }
      try checkpoint.window.bytes.withUnsafeBufferPointer {
        try inflate(bits: checkpoint.bits, history: $0, compressed, output, state: state)
      }
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

  /// Inflates with ISA-L (about twice zlib's speed here): primes the `bits` of the byte the checkpoint falls in,
  /// sets `history` (the window) as the dictionary, and steps over member trailers and headers when a member ends in
  /// the span. `state` is the decoder's memory (87 KiB), the caller's to reuse.
  static func inflate(
    bits: UInt8, history: UnsafeBufferPointer<UInt8>, _ compressed: UnsafeRawBufferPointer,
    _ output: UnsafeMutableRawBufferPointer, state: UnsafeMutablePointer<inflate_state>
  ) throws {
    isal_inflate_init(state)
    state.pointee.crc_flag = UInt32(ISAL_DEFLATE)
    var input = compressed[...]
    if bits > 0 {
      guard let first = input.first else { throw ClipError(.corrupt, "empty span") }
      // The unread bits are the high ones of that byte; ISA-L reads its bit buffer from the lowest bit up.
      state.pointee.read_in = UInt64(first >> (8 - bits))
      state.pointee.read_in_length = Int32(bits)
      input = input.dropFirst()
    }
    if let dictionary = history.baseAddress, !history.isEmpty {
      // ISA-L copies the dictionary; its pointer is not const only in the declaration.
      let result = isal_inflate_set_dict(state, UnsafeMutablePointer(mutating: dictionary), UInt32(history.count))
      guard result == COMP_OK else { throw ClipError(.corrupt, "checkpoint window rejected by ISA-L") }
    }
    var produced = 0
    while produced < output.count {
      let source = UnsafeRawBufferPointer(rebasing: input)
      state.pointee.next_in = UnsafeMutablePointer(mutating: source.baseAddress?.assumingMemoryBound(to: UInt8.self))
      state.pointee.avail_in = UInt32(source.count)
      state.pointee.next_out = (output.baseAddress.map { $0 + produced })?.assumingMemoryBound(to: UInt8.self)
      state.pointee.avail_out = UInt32(output.count - produced)
      let result = isal_inflate(state)
      let consumed = source.count - Int(state.pointee.avail_in)
      let before = produced
      input = input.dropFirst(consumed)
      produced = output.count - Int(state.pointee.avail_out)
      guard result >= 0 else { throw ClipError(.corrupt, "corrupt gzip data: \(LayerScanner.isalError(result))") }
      if produced == output.count { return }
      if state.pointee.block_state == ISAL_BLOCK_FINISH {
        // The member's deflate data ended (at a byte boundary after the bits still buffered): step over its
        // trailer and the next member's header, and go on with a fresh decoder (no history crosses members).
        let unread = Int(state.pointee.read_in_length) / 8
        let end = compressed.count - input.count - unread
        let rest = compressed[end...]
        guard rest.count > GzipMember.trailerSize,
          let header = try GzipMember.headerLength(
            UnsafeRawBufferPointer(rebasing: rest.dropFirst(GzipMember.trailerSize)))
        else { throw ClipError(.corrupt, "span ends between gzip members") }
        input = rest.dropFirst(GzipMember.trailerSize + header)
        isal_inflate_init(state)
        state.pointee.crc_flag = UInt32(ISAL_DEFLATE)
        continue
      }
      if consumed == 0 && produced == before {
        throw ClipError(.corrupt, "span ends \(output.count - produced) bytes before its data does")
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
