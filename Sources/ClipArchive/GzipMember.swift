import ClipCore

/// The gzip member header (RFC 1952, section 2.3): parsed only to find where the deflate data starts.
enum GzipMember {
  static let magic: [UInt8] = [0x1f, 0x8b]
  /// Bytes after a member's deflate data: CRC-32 and ISIZE.
  static let trailerSize = 8

  /// Returns the header length if `bytes` starts with a complete header, nil if more bytes are needed.
  static func headerLength(_ bytes: UnsafeRawBufferPointer) throws -> Int? {
    guard bytes.count >= 10 else {
      if bytes.count >= 1 && bytes[0] != 0x1f || bytes.count >= 2 && bytes[1] != 0x8b {
        throw ClipError(.corrupt, "not a gzip member header")
      }
      return nil
    }
    guard bytes[0] == 0x1f, bytes[1] == 0x8b else { throw ClipError(.corrupt, "not a gzip member header") }
    guard bytes[2] == 8 else { throw ClipError(.corrupt, "gzip compression method \(bytes[2]) is not deflate") }
    let flags = bytes[3]
    guard flags & 0xe0 == 0 else { throw ClipError(.corrupt, "gzip header has reserved flag bits set") }
    var i = 10
    if flags & 4 != 0 {  // FEXTRA
      guard bytes.count >= i + 2 else { return nil }
      i += 2 + (Int(bytes[i]) | Int(bytes[i + 1]) << 8)
    }
    for flag: UInt8 in [8, 16] where flags & flag != 0 {  // FNAME, FCOMMENT: NUL-terminated
      while true {
        guard i < bytes.count else { return nil }
        i += 1
        if bytes[i - 1] == 0 { break }
      }
    }
    if flags & 2 != 0 { i += 2 }  // FHCRC
    return i <= bytes.count ? i : nil
  }

  /// The CRC-32 field of a trailer.
  static func crc(_ trailer: UnsafeRawBufferPointer) -> UInt32 {
    UInt32(trailer[0]) | UInt32(trailer[1]) << 8 | UInt32(trailer[2]) << 16 | UInt32(trailer[3]) << 24
  }

  /// The ISIZE field of a trailer: the member's output length modulo 2^32.
  static func isize(_ trailer: UnsafeRawBufferPointer) -> UInt32 {
    UInt32(trailer[4]) | UInt32(trailer[5]) << 8 | UInt32(trailer[6]) << 16 | UInt32(trailer[7]) << 24
  }
}
