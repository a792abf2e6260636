import ClipCore
import ClipIndex

/// An index frame stored raw (codec 0) with a correct checksum, whatever its payload (specs/index-format.md,
/// "Frame"): for tests of an index whose frames are intact but whose content is not what it claims.
public func rawIndexFrame(kind: UInt8, payload: [UInt8]) -> [UInt8] {
  var bytes = IndexFormat.magic + [UInt8(IndexFormat.version & 0xff), UInt8(IndexFormat.version >> 8), kind, 0]
  for _ in 0..<2 { bytes += (0..<8).map { UInt8(truncatingIfNeeded: UInt64(payload.count) >> UInt64($0 * 8)) } }
  return bytes + payload + SHA256.hash(bytes + payload)
}
