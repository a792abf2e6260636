import Foundation

/// One of containerd's filters over snapshot infos (github.com/containerd/containerd/filters): a comma-separated
/// conjunction of `FIELD`, `FIELD==VALUE`, `FIELD!=VALUE` or `FIELD~=REGEX`, where FIELD is `name`, `parent`,
/// `kind` or `labels.KEY` (a key or value may be double-quoted). A list of filters matches when any matches.
public struct SnapshotFilter: Sendable {
  struct Condition: Sendable {
    enum Operator: Sendable { case present, equal, notEqual, matches }
    var field: [String]
    var op: Operator
    var value: String
  }

  let conditions: [Condition]

  /// Parses one filter.
  public init(parsing text: String) throws {
    var scanner = Scanner(Array(text.utf8))
    var conditions: [Condition] = []
    repeat {
      var field = [try scanner.token()]
      while scanner.take(".") { field.append(try scanner.token()) }
      var op = Condition.Operator.present
      var value = ""
      if scanner.take("==") {
        op = .equal
      } else if scanner.take("!=") {
        op = .notEqual
      } else if scanner.take("~=") {
        op = .matches
      }
      if op != .present { value = try scanner.token(allowEmpty: true, value: true) }
      if op == .matches, (try? NSRegularExpression(pattern: value)) == nil {
        throw SnapshotError(.invalidArgument, "filter \(text): '\(value)' is not a regular expression")
      }
      conditions.append(Condition(field: field, op: op, value: value))
    } while scanner.take(",")
    guard scanner.atEnd else {
      throw SnapshotError(.invalidArgument, "filter \(text): unexpected text at \(scanner.position)")
    }
    self.conditions = conditions
  }

  /// Whether `info` matches every condition.
  public func matches(_ info: SnapshotInfo) -> Bool {
    conditions.allSatisfy { condition in
      let actual: String?
      switch condition.field.first {
      case "name": actual = condition.field.count == 1 ? info.name : nil
      case "parent": actual = condition.field.count == 1 ? info.parent : nil
      case "kind": actual = condition.field.count == 1 ? info.kind.rawValue : nil
      case "labels": actual = condition.field.count == 2 ? info.labels[condition.field[1]] : nil
      default: actual = nil
      }
      switch condition.op {
      case .present: return actual != nil
      case .equal: return actual == condition.value
      case .notEqual: return actual != condition.value
      case .matches:
        guard let actual, let regex = try? NSRegularExpression(pattern: condition.value) else { return false }
        return regex.firstMatch(in: actual, range: NSRange(actual.startIndex..., in: actual)) != nil
      }
    }
  }

  private struct Scanner {
    let bytes: [UInt8]
    var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { position == bytes.count }

    mutating func take(_ literal: String) -> Bool {
      let expected = Array(literal.utf8)
      guard bytes[position...].starts(with: expected) else { return false }
      position += expected.count
      return true
    }

    /// A double-quoted string (with backslash escapes), or a run of characters up to an operator, dot or comma (a
    /// `value` runs up to a comma).
    mutating func token(allowEmpty: Bool = false, value: Bool = false) throws -> String {
      if position < bytes.count && bytes[position] == UInt8(ascii: "\"") {
        position += 1
        var out: [UInt8] = []
        while position < bytes.count && bytes[position] != UInt8(ascii: "\"") {
          if bytes[position] == UInt8(ascii: "\\") && position + 1 < bytes.count { position += 1 }
          out.append(bytes[position])
          position += 1
        }
        guard position < bytes.count else { throw SnapshotError(.invalidArgument, "unterminated quote in a filter") }
        position += 1
        return String(decoding: out, as: UTF8.self)
      }
      let start = position
      let stops: Set<UInt8> =
        value
        ? [UInt8(ascii: ",")]
        : [UInt8(ascii: "."), UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: "!"), UInt8(ascii: "~")]
      while position < bytes.count && !stops.contains(bytes[position]) { position += 1 }
      guard allowEmpty || position > start else {
        throw SnapshotError(.invalidArgument, "a filter field is missing at \(start)")
      }
      return String(decoding: bytes[start..<position], as: UTF8.self)
    }
  }
}
