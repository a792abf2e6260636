/// Finds which bytes of a gzip checkpoint's window decoding its span reads.
///
/// A back-reference reaches at most 32 KiB back, so only the first 32 KiB of a span's output read the window directly;
/// later output copies bytes of the span, whose window bytes are among those. Decoding that much output three times,
/// with windows of marks instead of history, tells every output byte's origin: a byte that differs between the
/// decodes with each offset's low byte and with its complement came from the window, at the offset the low-byte and
/// high-byte decodes spell; any other byte is a literal.
enum WindowUsage {
  /// `window` with only the bytes the span reads (zero bytes need no keeping: unkept bytes decode as zero); nil when
  /// `compressed` (the span's bytes from its checkpoint on) does not decode to `count` bytes.
  static func sparse(
    _ window: [UInt8], checkpoint: Checkpoint, compressed: UnsafeRawBufferPointer, count: Int
  ) -> CheckpointWindow? {
    let size = window.count
    func decode(_ marks: [UInt8]) -> [UInt8]? {
      var output = [UInt8](repeating: 0, count: count)
      let decoded: ()? = output.withUnsafeMutableBytes {
        try? SpanDecoder.inflate(bits: checkpoint.bits, history: Array(marks.prefix(size)), compressed, $0)
      }
      return decoded == nil ? nil : output
    }
    guard let low = decode(Marks.low), let complement = decode(Marks.complement), let high = decode(Marks.high)
    else { return nil }
    var read = [Bool](repeating: false, count: size)
    for j in 0..<count where low[j] != complement[j] {
      let offset = Int(high[j]) << 8 | Int(low[j])
      if offset < size { read[offset] = true }
    }
    return CheckpointWindow(window) { read[$0] && window[$0] != 0 }
  }

  /// Windows of marks: each offset's low byte, its complement, and its high byte.
  private enum Marks {
    static let low = (0..<deflateWindowSize).map { UInt8(truncatingIfNeeded: $0) }
    static let complement = low.map { ~$0 }
    static let high = (0..<deflateWindowSize).map { UInt8(truncatingIfNeeded: $0 >> 8) }
  }
}
