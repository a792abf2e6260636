import ClipCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Serves a store's statistics on a unix socket: a client sends `json` or `prometheus` and a newline, and gets the
/// numbers in that form. `clip stats MOUNTPOINT` is the client.
public final class StatsEndpoint: @unchecked Sendable {
  /// The socket path.
  public let path: String
  private let fd: Int32

  /// Listens on `path` (replacing a stale socket) and answers from `stats` on a thread of its own.
  public init(path: String, stats: StoreStats) throws {
    self.path = path
    unlink(path)
    fd = try Self.socketAddress(path) { address, length in
      let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
      guard fd >= 0 else { throw ClipError.system("socket") }
      guard bind(fd, address, length) == 0, listen(fd, 16) == 0 else {
        Glibc.close(fd)
        throw ClipError.system("bind", path)
      }
      return fd
    }
    let listener = fd
    let thread = Thread {
      while true {
        let client = accept(listener, nil, nil)
        if client < 0 {
          if errno == EINTR { continue }
          return  // closed
        }
        var request = [UInt8](repeating: 0, count: 64)
        let n = Glibc.read(client, &request, request.count)
        let format =
          n > 0 ? String(decoding: request[0..<n], as: UTF8.self).trimmingASCIIWhitespace : ""
        let snapshot = stats.snapshot()
        let answer: String
        if format == "prometheus" {
          answer = snapshot.prometheus
        } else {
          let encoder = JSONEncoder()
          encoder.outputFormatting = [.sortedKeys]
          answer = ((try? encoder.encode(snapshot)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
        }
        _ = Array(answer.utf8).withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
        Glibc.close(client)
      }
    }
    thread.name = "clip-stats"
    thread.start()
  }

  /// Stops listening and removes the socket.
  public func close() {
    shutdown(fd, Int32(SHUT_RDWR))
    Glibc.close(fd)
    unlink(path)
  }

  /// Asks the endpoint at `path` for its numbers in `format` (`json` or `prometheus`).
  public static func query(_ path: String, format: String) throws -> String {
    let fd = try socketAddress(path) { address, length in
      let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
      guard fd >= 0 else { throw ClipError.system("socket") }
      guard connect(fd, address, length) == 0 else {
        Glibc.close(fd)
        throw ClipError(.notFound, "no clip mount answers at \(path) (is it mounted by clip?)")
      }
      return fd
    }
    defer { Glibc.close(fd) }
    _ = Array((format + "\n").utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var answer: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = Glibc.read(fd, &buffer, buffer.count)
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { break }
      answer += buffer[0..<n]
    }
    return String(decoding: answer, as: UTF8.self)
  }

  private static func socketAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) throws
    -> T
  {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { throw ClipError(.invalidArgument, "socket path too long: \(path)") }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
      for (i, byte) in bytes.enumerated() { raw[i] = byte }
    }
    return try withUnsafePointer(to: &address) {
      try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        try body($0, socklen_t(MemoryLayout<sockaddr_un>.size))
      }
    }
  }
}
