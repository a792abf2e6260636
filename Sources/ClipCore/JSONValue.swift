/// A JSON document (RFC 8259), parsed without Codable, for the documents a container start reads (the runtime's
/// state, config.json, the hook's own records): Foundation's `JSONDecoder` costs a hook start about a millisecond
/// of generic-metadata instantiation and protocol-conformance scans over the whole binary, this a few microseconds.
public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  /// Parses a whole document; throws `ClipError.corrupt` naming the offset of the first thing wrong.
  public init(parsing bytes: [UInt8]) throws {
    var parser = Parser(bytes: bytes)
    self = try parser.document()
  }

  /// The member `key` of an object (nil if absent, or if this is no object).
  public subscript(key: String) -> JSONValue? {
    if case .object(let members) = self { members[key] } else { nil }
  }

  /// The string, if this is one.
  public var string: String? { if case .string(let value) = self { value } else { nil } }
  /// The boolean, if this is one.
  public var bool: Bool? { if case .bool(let value) = self { value } else { nil } }
  /// The number, if this is one.
  public var number: Double? { if case .number(let value) = self { value } else { nil } }
  /// The elements, if this is an array.
  public var array: [JSONValue]? { if case .array(let value) = self { value } else { nil } }
  /// The members, if this is an object.
  public var object: [String: JSONValue]? { if case .object(let value) = self { value } else { nil } }

  /// The number as an integer of type `T`, if it is one that fits.
  public func integer<T: FixedWidthInteger>(_ type: T.Type = T.self) -> T? {
    guard let number, number.rounded() == number else { return nil }
    return T(exactly: number)
  }

  /// An object's string members (nil if this is no object or a member is not a string).
  public var stringMap: [String: String]? {
    guard let object else { return nil }
    var map: [String: String] = [:]
    for (key, value) in object {
      guard let string = value.string else { return nil }
      map[key] = string
    }
    return map
  }

  // MARK: Reading documents, errors naming the field

  /// Parses `bytes` and reads a value from the document with `read`; every error becomes one `ClipError.corrupt`
  /// "malformed `what`: FIELD: …" (FIELD the member path, e.g. `process.user.uid`).
  public static func read<T>(_ bytes: [UInt8], what: String, _ read: (JSONValue) throws -> T) throws -> T {
    do {
      return try read(try JSONValue(parsing: bytes))
    } catch let error as ClipError {
      let field = error.context.reversed().joined(separator: ".")
      throw ClipError(.corrupt, "malformed \(what): " + (field.isEmpty ? "" : field + ": ") + error.message)
    }
  }

  /// This value as `get` reads it, or an error saying it is not `expected`.
  public func read<T>(as expected: String, _ get: (JSONValue) -> T?) throws -> T {
    guard let value = get(self) else { throw ClipError(.corrupt, "not \(expected)") }
    return value
  }

  /// Member `key` read with `read`; a missing or null member is an error (errors name the member).
  public func member<T>(_ key: String, _ read: (JSONValue) throws -> T) throws -> T {
    guard let value = self[key], value != .null else { throw ClipError(.corrupt, "no \(key)") }
    return try ClipError.inContext(key) { try read(value) }
  }

  /// Member `key` read with `read`, or nil if it is missing or null (errors name the member).
  public func optionalMember<T>(_ key: String, _ read: (JSONValue) throws -> T) throws -> T? {
    guard let value = self[key], value != .null else { return nil }
    return try ClipError.inContext(key) { try read(value) }
  }

  /// The string member `key` (required).
  public func stringMember(_ key: String) throws -> String {
    try member(key) { try $0.read(as: "a string") { $0.string } }
  }

  /// The document as compact JSON text (object members sorted by key).
  public var text: String {
    switch self {
    case .null: "null"
    case .bool(let value): value ? "true" : "false"
    case .number(let value): value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : "\(value)"
    case .string(let value): Self.quoted(value)
    case .array(let elements): "[" + elements.map(\.text).joined(separator: ",") + "]"
    case .object(let members):
      "{" + members.sorted { $0.key < $1.key }.map { Self.quoted($0.key) + ":" + $0.value.text }.joined(separator: ",")
        + "}"
    }
  }

  static func quoted(_ string: String) -> String {
    var out = "\""
    for scalar in string.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

/// Recursive descent over the bytes, nesting at most `maxDepth` deep.
private struct Parser {
  let bytes: [UInt8]
  var at = 0
  var depth = 0
  static let maxDepth = 256

  init(bytes: [UInt8]) { self.bytes = bytes }

  func failure(_ what: String) -> ClipError { ClipError(.corrupt, "malformed JSON at byte \(at): \(what)") }

  mutating func document() throws -> JSONValue {
    let value = try self.value()
    skipSpace()
    guard at == bytes.count else { throw failure("text after the document") }
    return value
  }

  mutating func skipSpace() {
    while at < bytes.count, [0x20, 0x09, 0x0a, 0x0d].contains(bytes[at]) { at += 1 }
  }

  mutating func value() throws -> JSONValue {
    skipSpace()
    guard at < bytes.count else { throw failure("unexpected end") }
    switch bytes[at] {
    case UInt8(ascii: "{"): return try nested { try $0.object() }
    case UInt8(ascii: "["): return try nested { try $0.array() }
    case UInt8(ascii: "\""): return .string(try string())
    case UInt8(ascii: "t"): return try literal("true", .bool(true))
    case UInt8(ascii: "f"): return try literal("false", .bool(false))
    case UInt8(ascii: "n"): return try literal("null", .null)
    default: return .number(try number())
    }
  }

  mutating func nested(_ body: (inout Parser) throws -> JSONValue) throws -> JSONValue {
    depth += 1
    defer { depth -= 1 }
    guard depth <= Self.maxDepth else { throw failure("nested more than \(Self.maxDepth) deep") }
    return try body(&self)
  }

  mutating func literal(_ word: String, _ value: JSONValue) throws -> JSONValue {
    let text = Array(word.utf8)
    guard bytes.count - at >= text.count, bytes[at..<at + text.count].elementsEqual(text) else {
      throw failure("expected \(word)")
    }
    at += text.count
    return value
  }

  mutating func expect(_ byte: UInt8) throws {
    skipSpace()
    guard at < bytes.count, bytes[at] == byte else { throw failure("expected '\(Character(Unicode.Scalar(byte)))'") }
    at += 1
  }

  /// Whether the next byte (after space) is `byte`; consumes it if so.
  mutating func next(is byte: UInt8) -> Bool {
    skipSpace()
    guard at < bytes.count, bytes[at] == byte else { return false }
    at += 1
    return true
  }

  mutating func object() throws -> JSONValue {
    try expect(UInt8(ascii: "{"))
    var members: [String: JSONValue] = [:]
    if next(is: UInt8(ascii: "}")) { return .object(members) }
    repeat {
      skipSpace()
      guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw failure("expected a member name") }
      let key = try string()
      try expect(UInt8(ascii: ":"))
      members[key] = try value()
    } while next(is: UInt8(ascii: ","))
    try expect(UInt8(ascii: "}"))
    return .object(members)
  }

  mutating func array() throws -> JSONValue {
    try expect(UInt8(ascii: "["))
    var elements: [JSONValue] = []
    if next(is: UInt8(ascii: "]")) { return .array(elements) }
    repeat { elements.append(try value()) } while next(is: UInt8(ascii: ","))
    try expect(UInt8(ascii: "]"))
    return .array(elements)
  }

  mutating func string() throws -> String {
    at += 1  // the opening quote
    var out: [UInt8] = []
    while at < bytes.count {
      let byte = bytes[at]
      at += 1
      switch byte {
      case UInt8(ascii: "\""):
        guard let text = String(validating: out, as: UTF8.self) else { throw failure("a string that is not UTF-8") }
        return text
      case UInt8(ascii: "\\"):
        guard at < bytes.count else { break }
        let escape = bytes[at]
        at += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0c)
        case UInt8(ascii: "n"): out.append(0x0a)
        case UInt8(ascii: "r"): out.append(0x0d)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"): out += Array(String(try escapedScalar()).utf8)
        default: throw failure("an unknown escape")
        }
      case 0..<0x20: throw failure("a control character in a string")
      default: out.append(byte)
      }
    }
    throw failure("an unterminated string")
  }

  /// The scalar of `\uXXXX` (the `\u` consumed), joining a surrogate pair.
  mutating func escapedScalar() throws -> Unicode.Scalar {
    let high = try hex4()
    if (0xd800..<0xdc00).contains(high) {
      guard bytes.count - at >= 2, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
        throw failure("a lone surrogate")
      }
      at += 2
      let low = try hex4()
      guard (0xdc00..<0xe000).contains(low),
        let scalar = Unicode.Scalar(0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00))
      else { throw failure("a bad surrogate pair") }
      return scalar
    }
    guard let scalar = Unicode.Scalar(high) else { throw failure("a lone surrogate") }
    return scalar
  }

  mutating func hex4() throws -> UInt32 {
    guard bytes.count - at >= 4, let value = UInt32(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16)
    else { throw failure("a bad \\u escape") }
    at += 4
    return value
  }

  mutating func number() throws -> Double {
    let start = at
    if at < bytes.count, bytes[at] == UInt8(ascii: "-") { at += 1 }
    let digits = UInt8(ascii: "0")...UInt8(ascii: "9")
    let integer = at
    while at < bytes.count, digits.contains(bytes[at]) { at += 1 }
    guard at > integer, bytes[integer] != UInt8(ascii: "0") || at == integer + 1 else {
      throw failure("expected a value")
    }
    if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
      at += 1
      let fraction = at
      while at < bytes.count, digits.contains(bytes[at]) { at += 1 }
      guard at > fraction else { throw failure("a number without fraction digits") }
    }
    if at < bytes.count, bytes[at] == UInt8(ascii: "e") || bytes[at] == UInt8(ascii: "E") {
      at += 1
      if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
      let exponent = at
      while at < bytes.count, digits.contains(bytes[at]) { at += 1 }
      guard at > exponent else { throw failure("a number without exponent digits") }
    }
    guard let value = Double(String(decoding: bytes[start..<at], as: UTF8.self)) else {
      throw failure("a number out of range")
    }
    return value
  }
}
