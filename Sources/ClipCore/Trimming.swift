extension StringProtocol {
  /// The text without its leading and trailing ASCII whitespace (space, tab, line feed, carriage return, vertical tab,
  /// form feed). Foundation's `trimmingCharacters(in:)` would do, but it initializes CoreFoundation's character sets:
  /// milliseconds at each hook start, where this runs.
  public var trimmingASCIIWhitespace: String {
    let isSpace: (UInt8) -> Bool = { $0 == 0x20 || (0x09...0x0D).contains($0) }
    let bytes = Array(utf8)
    guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
    else { return "" }
    return String(decoding: bytes[first...last], as: UTF8.self)
  }
}
