#if canImport(Glibc)
  import Glibc
#endif

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, RFC 3339) for `seconds` since the epoch (default: now): log lines and containerd's
/// time labels. Written from `gmtime_r`'s fields by hand: no ICU (a daemon should not map locale data to print a
/// time), and no `strftime`, which calls `tzset` and so reads the host's time zone file — a disk read on a hook's
/// start when the page cache is cold, for a time printed in UTC.
public func utcTimestamp(_ seconds: Int = time(nil)) -> String {
  var now = time_t(seconds)
  var parts = tm()
  gmtime_r(&now, &parts)
  func digits(_ value: Int32, _ count: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, count - text.count)) + text
  }
  return digits(parts.tm_year + 1900, 4) + "-" + digits(parts.tm_mon + 1, 2) + "-" + digits(parts.tm_mday, 2) + "T"
    + digits(parts.tm_hour, 2) + ":" + digits(parts.tm_min, 2) + ":" + digits(parts.tm_sec, 2) + "Z"
}
