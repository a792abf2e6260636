/// A content digest as OCI writes it: `sha256:<64 lowercase hex digits>`.
///
/// Validated on construction, so a `Digest` value is always well formed. Only sha256 is accepted: it is what every
/// registry and image uses, and what clip verifies with.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
  /// The 32 digest bytes.
  public let bytes: [UInt8]

  /// Parses `sha256:<hex>`.
  public init(_ string: String) throws {
    let parts = string.split(separator: ":", maxSplits: 1)
    guard parts.count == 2, parts[0] == "sha256" else {
      throw ClipError(.invalidArgument, "unsupported digest '\(string)' (expected sha256:<hex>)")
    }
    guard let bytes = Hex.decode(parts[1]), bytes.count == 32 else {
      throw ClipError(.invalidArgument, "malformed digest '\(string)'")
    }
    self.bytes = bytes
  }

  /// Wraps 32 digest bytes.
  public init(sha256 bytes: [UInt8]) throws {
    guard bytes.count == 32 else { throw ClipError(.corrupt, "a sha256 digest has 32 bytes, not \(bytes.count)") }
    self.bytes = bytes
  }

  /// The SHA-256 digest of `data`.
  public static func of(_ data: [UInt8]) -> Digest {
    Digest(unchecked: SHA256.hash(data))
  }

  init(unchecked bytes: [UInt8]) { self.bytes = bytes }

  /// The hex part alone (file names in blob stores).
  public var hex: String { Hex.encode(bytes) }

  /// `sha256:<hex>`.
  public var description: String { "sha256:" + hex }

  /// A short form for messages and tables: `sha256:0123456789ab`.
  public var short: String { "sha256:" + String(hex.prefix(12)) }

  public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.bytes.lexicographicallyPrecedes(rhs.bytes) }

  public init(from decoder: any Decoder) throws {
    let container = try decoder.singleValueContainer()
    try self.init(try container.decode(String.self))
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }
}

/// Lowercase hexadecimal encoding.
public enum Hex {
  /// Encodes bytes as lowercase hex.
  public static func encode(_ bytes: some Sequence<UInt8>) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Decodes lowercase hex; nil if the text is not an even number of lowercase hex digits.
  public static func decode(_ text: some StringProtocol) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    func value(_ c: UInt8) -> UInt8? {
      switch c {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
      default: return nil
      }
    }
    var out = [UInt8]()
    out.reserveCapacity(utf8.count / 2)
    var i = 0
    while i < utf8.count {
      guard let high = value(utf8[i]), let low = value(utf8[i + 1]) else { return nil }
      out.append(high << 4 | low)
      i += 2
    }
    return out
  }
}
