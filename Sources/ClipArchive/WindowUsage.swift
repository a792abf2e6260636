import CIsal

/// Finds which bytes of a gzip checkpoint's window decoding its span reads.
///
/// A back-reference reaches at most 32 KiB back, so only the first 32 KiB of a span's output read the window directly;
/// later output copies bytes of the span, whose window bytes are among those. Decoding that much output twice, with
/// windows of marks instead of history, tells every output byte's origin: once with each offset's low byte `l`, once
/// with its high byte `h` (at most 127) when `h < l`, else `h + 1`. The second mark never equals the first, and with
/// the first it spells the offset, so a byte that differs between the decodes came from the window at that offset,
/// and a byte that does not is a literal.
///
/// One instance serves a whole scan: its decoder state and buffers are allocated once (a layer has thousands of
/// checkpoints, and short-lived 32–87 KiB blocks between the kept windows would fragment the heap).
final class WindowUsage {
  private static let size = deflateWindowSize
  private let state = UnsafeMutablePointer<inflate_state>.allocate(capacity: 1)
  /// The two windows of marks, one after the other: low bytes, then high bytes moved off the low bytes.
  private let marks = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 2 * size)
  /// The two decodes' output, in the same order.
  private let outputs = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 2 * size)
  /// Which window offsets the decodes read.
  private let kept = UnsafeMutableBufferPointer<Bool>.allocate(capacity: size)

  init() {
    for offset in 0..<Self.size {
      let low = offset & 0xff
      let high = offset >> 8
      marks[offset] = UInt8(low)
      marks[Self.size + offset] = UInt8(high < low ? high : high + 1)
    }
  }

  deinit {
    state.deallocate()
    marks.deallocate()
    outputs.deallocate()
    kept.deallocate()
  }

  /// `window` with only the bytes the span reads (zero bytes need no keeping: unkept bytes decode as zero); nil when
  /// `compressed` (the span's bytes from its checkpoint on, which starts `bits` into its first byte) does not decode
  /// to `count` bytes.
  func sparse(_ window: [UInt8], bits: UInt8, compressed: UnsafeRawBufferPointer, count: Int)
    -> CheckpointWindow?
  {
    let size = window.count
    let count = min(count, Self.size)
    guard size <= Self.size else { return nil }
    for which in 0..<2 {
      let base = which * Self.size
      do {
        try SpanDecoder.inflate(
          bits: bits, history: UnsafeBufferPointer(rebasing: marks[base..<base + size]), compressed,
          UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: outputs[base..<base + count])),
          state: state)
      } catch {
        return nil
      }
    }
    let kept = self.kept
    kept.update(repeating: false)
    window.withUnsafeBufferPointer { window in
      for j in 0..<count where outputs[j] != outputs[Self.size + j] {
        let low = Int(outputs[j])
        let mark = Int(outputs[Self.size + j])
        let offset = (mark < low ? mark : mark - 1) << 8 | low
        if offset < size, window[offset] != 0 { kept[offset] = true }
      }
    }
    return CheckpointWindow(window) { kept[$0] }
  }
}
