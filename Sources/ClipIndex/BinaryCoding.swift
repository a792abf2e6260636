import ClipCore

/// Appends little-endian integers, LEB128 varints and length-prefixed bytes: the primitives of the index format.
struct ByteWriter {
  var bytes: [UInt8] = []

  mutating func u8(_ value: UInt8) { bytes.append(value) }

  mutating func u16(_ value: UInt16) {
    bytes.append(UInt8(value & 0xff))
    bytes.append(UInt8(value >> 8))
  }

  mutating func u64(_ value: UInt64) {
    for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
  }

  /// Unsigned LEB128.
  mutating func varint(_ value: UInt64) {
    var v = value
    while v >= 0x80 {
      bytes.append(UInt8(v & 0x7f) | 0x80)
      v >>= 7
    }
    bytes.append(UInt8(v))
  }

  mutating func varint(_ value: UInt32) { varint(UInt64(value)) }
  mutating func varint(_ value: Int) { varint(UInt64(value)) }

  /// Zigzag-encoded signed LEB128.
  mutating func svarint(_ value: Int64) { varint(UInt64(bitPattern: (value << 1) ^ (value >> 63))) }

  mutating func raw(_ data: some Collection<UInt8>) { bytes.append(contentsOf: data) }

  /// Length-prefixed bytes.
  mutating func data(_ data: some Collection<UInt8>) {
    varint(data.count)
    bytes.append(contentsOf: data)
  }

  mutating func string(_ text: String) { data(Array(text.utf8)) }

  /// An optional string list: 0 for none, else count + 1 and the strings.
  mutating func strings(_ list: [String]?) {
    guard let list else { return varint(0) }
    varint(list.count + 1)
    for item in list { string(item) }
  }

  mutating func optionalString(_ text: String?) {
    guard let text else { return u8(0) }
    u8(1)
    string(text)
  }
}

/// Reads what `ByteWriter` wrote, checking every bound: a corrupt input yields a `ClipError`, never a crash.
struct ByteReader {
  let bytes: [UInt8]
  private(set) var position: Int
  let what: String

  init(_ bytes: [UInt8], what: String) {
    self.bytes = bytes
    self.position = 0
    self.what = what
  }

  var remaining: Int { bytes.count - position }

  func corrupt(_ message: String) -> ClipError {
    ClipError(.corrupt, "corrupt \(what): \(message)", context: ["byte \(position)"])
  }

  mutating func u8() throws -> UInt8 {
    guard position < bytes.count else { throw corrupt("unexpected end") }
    defer { position += 1 }
    return bytes[position]
  }

  mutating func u16() throws -> UInt16 {
    let low = try u8()
    return UInt16(low) | UInt16(try u8()) << 8
  }

  mutating func u64() throws -> UInt64 {
    var value: UInt64 = 0
    for shift in stride(from: 0, to: 64, by: 8) { value |= UInt64(try u8()) << UInt64(shift) }
    return value
  }

  mutating func varint() throws -> UInt64 {
    var value: UInt64 = 0
    var shift: UInt64 = 0
    while true {
      let byte = try u8()
      if shift == 63 && byte > 1 || shift > 63 { throw corrupt("varint overflows 64 bits") }
      value |= UInt64(byte & 0x7f) << shift
      if byte & 0x80 == 0 { return value }
      shift += 7
    }
  }

  mutating func varint32() throws -> UInt32 {
    let value = try varint()
    guard value <= UInt64(UInt32.max) else { throw corrupt("value \(value) out of range") }
    return UInt32(value)
  }

  /// A count of items that each take at least `minimumSize` bytes: bounded by what is left, so a corrupt count
  /// cannot make the decoder allocate without limit.
  mutating func count(minimumSize: Int = 1) throws -> Int {
    let value = try varint()
    guard value <= UInt64(remaining / max(minimumSize, 1)) else { throw corrupt("count \(value) exceeds the data") }
    return Int(value)
  }

  mutating func svarint() throws -> Int64 {
    let raw = try varint()
    return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
  }

  mutating func raw(_ count: Int) throws -> ArraySlice<UInt8> {
    guard count >= 0, count <= remaining else { throw corrupt("\(count) bytes wanted, \(remaining) left") }
    defer { position += count }
    return bytes[position..<position + count]
  }

  mutating func data() throws -> [UInt8] { Array(try raw(try count())) }

  mutating func string() throws -> String { String(decoding: try data(), as: UTF8.self) }

  mutating func strings() throws -> [String]? {
    let n = try count()
    guard n > 0 else { return nil }
    return try (1..<n).map { _ in try string() }
  }

  mutating func optionalString() throws -> String? {
    switch try u8() {
    case 0: return nil
    case 1: return try string()
    case let tag: throw corrupt("bad optional tag \(tag)")
    }
  }

  mutating func digest() throws -> Digest { try Digest(sha256: Array(try raw(32))) }
}
