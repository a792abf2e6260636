#if canImport(Glibc)
  import Glibc
#endif

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC, RFC 3339) for `seconds` since the epoch (default: now), from libc: log lines and
/// containerd's time labels (no ICU: a daemon should not map locale data to print a time).
public func utcTimestamp(_ seconds: Int = time(nil)) -> String {
  var now = time_t(seconds)
  var parts = tm()
  gmtime_r(&now, &parts)
  var buffer = [CChar](repeating: 0, count: 32)
  let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
  return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
