import Glibc
import Testing

@testable import ClipCore

@Suite struct TimestampTests {
  @Test(arguments: [
    (0, "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"), (1_795_786_205, "2026-11-27T13:30:05Z"),
    (4_102_444_799, "2099-12-31T23:59:59Z"), (-1, "1969-12-31T23:59:59Z"),
  ])
  func writesUTCInRFC3339(seconds: Int, expected: String) {
    #expect(utcTimestamp(seconds) == expected)
  }

  /// Every day from 1900 to 2200 (and the hours of one) against libc's `gmtime_r`.
  @Test func agreesWithLibcOnEveryDayOfThreeCenturies() {
    var seconds = -2_208_988_800  // 1900-01-01
    while seconds < 7_258_118_400 {  // 2200-01-01
      var time = time_t(seconds)
      var parts = tm()
      gmtime_r(&time, &parts)
      let date = CivilDate(daysSinceEpoch: Int((seconds >= 0 ? seconds : seconds - 86_399) / 86_400))
      #expect(
        [date.year, date.month, date.day] == [Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday)],
        "day at \(seconds)")
      seconds += 86_400
    }
  }
}
