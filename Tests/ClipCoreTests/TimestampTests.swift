import Testing

@testable import ClipCore

@Suite struct TimestampTests {
  @Test(arguments: [
    (0, "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"), (1_795_786_205, "2026-11-27T13:30:05Z"),
    (4_102_444_799, "2099-12-31T23:59:59Z"),
  ])
  func writesUTCInRFC3339(seconds: Int, expected: String) {
    #expect(utcTimestamp(seconds) == expected)
  }
}
