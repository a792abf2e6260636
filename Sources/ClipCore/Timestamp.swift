#if canImport(Glibc)
  import Glibc
#endif

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, RFC 3339) for `seconds` since the epoch (default: now): log lines and containerd's
/// time labels. Computed here rather than by libc: no ICU (a daemon should not map locale data to print a time), and
/// no `gmtime_r` or `strftime`, whose first call in a process reads the host's time zone file — a disk read on a
/// hook's start when the page cache is cold, for a time printed in UTC.
public func utcTimestamp(_ seconds: Int = time(nil)) -> String {
  let (days, secondOfDay) = seconds.quotientAndRemainder(dividingBy: 86_400)
  let (day, second) = secondOfDay < 0 ? (days - 1, secondOfDay + 86_400) : (days, secondOfDay)
  let date = CivilDate(daysSinceEpoch: day)
  func digits(_ value: Int, _ count: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, count - text.count)) + text
  }
  return digits(date.year, 4) + "-" + digits(date.month, 2) + "-" + digits(date.day, 2) + "T"
    + digits(second / 3600, 2) + ":" + digits(second / 60 % 60, 2) + ":" + digits(second % 60, 2) + "Z"
}

/// A day of the proleptic Gregorian calendar, from a count of days since 1970-01-01 (the civil-from-days algorithm:
/// 400-year eras of 146,097 days, years counted from March so that the leap day ends the year).
struct CivilDate {
  let year: Int
  let month: Int
  let day: Int

  init(daysSinceEpoch days: Int) {
    let shifted = days + 719_468  // days since 0000-03-01
    let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
    let dayOfEra = shifted - era * 146_097  // 0...146096
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365  // 0...399
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)  // 0...365, from March 1
    let monthFromMarch = (5 * dayOfYear + 2) / 153  // 0...11
    day = dayOfYear - (153 * monthFromMarch + 2) / 5 + 1
    month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9
    year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
  }
}
