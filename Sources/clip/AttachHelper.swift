import CClipShims
import ClipCore
import ClipRuntime
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The attach step of the hook, run as a fresh copy of this executable: entering a container's mount namespace
/// (setns) needs a single-threaded process, so it happens in `main` before anything else runs.
///
/// Arguments: `__attach PID ROOTFS ro|rw NAME SOURCE [NAME SOURCE…]`.
enum AttachHelper {
  /// The hidden first argument that selects the attach step.
  static let command = "__attach"

  /// Runs the attach step in a child process and waits for it; its one-line error becomes the thrown error.
  static func run(_ request: AttachRequest) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: try Daemon.executable())
    process.arguments =
      [command, "\(request.pid)", request.rootfs, request.readonly ? "ro" : "rw"]
      + request.entries.flatMap { [$0.name, $0.source] }
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let message = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
      let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
      throw ClipError(.system, text.isEmpty ? "the attach step failed (\(process.terminationStatus))" : text)
    }
  }

  /// In the child, straight from `main`: performs the attach and exits.
  static func main(_ arguments: [String]) -> Never {
    guard arguments.count >= 4, let pid = Int32(arguments[1]), arguments.count % 2 == 0 else {
      fail("usage: clip __attach PID ROOTFS ro|rw NAME SOURCE…")
    }
    let rootfs = arguments[2]
    let readonly: Int32 = arguments[3] == "ro" ? 1 : 0
    let pairs = stride(from: 4, to: arguments.count, by: 2).map { (arguments[$0], arguments[$0 + 1]) }
    let names = pairs.map { strdup($0.0) }
    let sources = pairs.map { strdup($0.1) }
    var error = [CChar](repeating: 0, count: 1024)
    let result = names.map { UnsafePointer($0) }.withUnsafeBufferPointer { namePointers in
      sources.map { UnsafePointer($0) }.withUnsafeBufferPointer { sourcePointers in
        clip_attach_trees(
          pid, rootfs, sourcePointers.baseAddress, namePointers.baseAddress, Int32(pairs.count), readonly, &error,
          error.count)
      }
    }
    guard result == 0 else {
      fail(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
    exit(0)
  }

  private static func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("\(message)\n".utf8))
    exit(1)
  }
}
