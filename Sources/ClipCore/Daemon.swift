import CClipShims
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Starting a long-lived process that is fully detached from its caller (OCI runtimes wait for a hook's stdout and
/// stderr to close, so a daemon must hold neither): a new session, stdin and stdout on /dev/null, stderr to a log
/// file, no inherited descriptor but a readiness pipe.
public enum Daemon {
  /// The descriptor number the child finds its readiness pipe at.
  public static let readyDescriptor: Int32 = 3

  /// The absolute path of this executable.
  public static func executable() throws -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard length > 0 else { throw ClipError.system("readlink", "/proc/self/exe") }
    return String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// Runs this executable again with `arguments`, detached, without waiting for it. Returns its pid.
  @discardableResult
  public static func start(arguments: [String], log: String) throws -> Int32 {
    try launch(arguments: arguments, log: log, ready: -1)
  }

  private static func launch(arguments: [String], log: String, ready: Int32) throws -> Int32 {
    let path = try executable()
    var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let result = clip_spawn_detached(path, &argv, environ, log, ready, &pid)
    guard result == 0 else { throw ClipError.system("spawn", path, errno: result) }
    return pid
  }

  /// Runs this executable again with `arguments` (which should tell it to report on `readyDescriptor`), detached,
  /// and waits (at most `timeout` seconds) until it reports: returns its pid on "ready", throws its message otherwise.
  @discardableResult
  public static func spawn(arguments: [String], log: String, timeout: Int32 = 600) throws -> Int32 {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw ClipError.system("pipe") }
    let (readEnd, writeEnd) = (fds[0], fds[1])
    defer { close(readEnd) }
    let pid: Int32
    do {
      pid = try launch(arguments: arguments, log: log, ready: writeEnd)
      close(writeEnd)
    } catch {
      close(writeEnd)
      throw error
    }

    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
      var ready = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
      let polled = poll(&ready, 1, timeout * 1000)
      if polled < 0 && errno == EINTR { continue }
      guard polled > 0 else {
        kill(pid, SIGTERM)
        throw ClipError(.unavailable, "the daemon did not get ready within \(timeout) s (see \(log))")
      }
      let n = read(readEnd, &buffer, buffer.count)
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { break }
      answer += buffer[0..<n]
    }
    let message = String(decoding: answer, as: UTF8.self).trimmingASCIIWhitespace
    guard message == "ready" else {
      throw ClipError(.system, message.isEmpty ? "the daemon exited before it was ready (see \(log))" : message)
    }
    return pid
  }

  /// In the daemon: tells the waiting parent the outcome ("ready" or an error message) and closes the pipe.
  public static func report(_ message: String, on fd: Int32 = readyDescriptor) {
    _ = Array((message + "\n").utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
  }
}
