import Foundation
import Testing

@testable import ClipCore

@Suite struct JSONValueTests {
  func parse(_ text: String) throws -> JSONValue { try JSONValue(parsing: Array(text.utf8)) }

  @Test func parsesEveryKindOfValue() throws {
    let value = try parse(
      #" { "s": "a\"b\\c\/d\n\u00e9\ud83d\ude00", "n": -12.5e-1, "i": 42, "z": 0, "t": true, "f": false, "x": null, "#
        + #""a": [1, [], {}], "o": {"k": "v"} } "#)
    #expect(value["s"]?.string == "a\"b\\c/d\né😀")
    #expect(value["n"]?.number == -1.25)
    #expect(value["i"]?.integer(Int32.self) == 42)
    #expect(value["n"]?.integer(Int32.self) == nil)
    #expect(value["z"]?.integer(UInt8.self) == 0)
    #expect(value["t"]?.bool == true && value["f"]?.bool == false)
    #expect(value["x"] == .null)
    #expect(value["a"] == .array([.number(1), .array([]), .object([:])]))
    #expect(value["o"]?.stringMap == ["k": "v"])
    #expect(value["missing"] == nil)
    #expect(try parse(value.text) == value)  // what it writes, it reads back
  }

  @Test(arguments: [
    "", "{", "[1,]", "{\"a\":1,}", "{a:1}", "01", "1.", "-", "1e", "\"\\x\"", "\"\\ud800\"", "\"a\u{1}\"",
    "\"unterminated", "tru", "[1] 2", "{\"a\" 1}",
    String(repeating: "[", count: 300) + String(repeating: "]", count: 300),
  ])
  func rejectsMalformedDocuments(text: String) {
    #expect(throws: ClipError.self) { try parse(text) }
  }

  @Test func rejectsBytesThatAreNotUTF8() {
    #expect(throws: ClipError.self) { try JSONValue(parsing: [0x22, 0xff, 0x22]) }
  }

  @Test func writesStringsEscaped() {
    #expect(JSONValue.string("a\"\\\n\u{1}é").text == #""a\"\\\n\u0001é""#)
    #expect(JSONValue.object(["b": .number(1), "a": .number(2.5)]).text == #"{"a":2.5,"b":1}"#)
  }
}
