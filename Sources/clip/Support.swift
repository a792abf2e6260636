import ArgumentParser
import ClipCore
import ClipIndex
import ClipRegistry
import ClipStore
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// How to reach a registry: the options `index`, `mount` and `bundle` share.
struct RegistryOptions: ParsableArguments {
  @Flag(help: "Speak plain HTTP to the registry (always so for loopback registries).")
  var plainHTTP = false

  @Option(help: "A Docker config.json with the registry's credentials (default: Docker's own).")
  var authfile: String?
}

/// Runs a command body, turning any error into one `clip: error: …` line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
  do {
    try body()
  } catch let error as ClipError {
    FileHandle.standardError.write(Data("clip: error: \(error)\n".utf8))
    throw ExitCode(1)
  } catch let error as ExitCode {
    throw error
  } catch {
    FileHandle.standardError.write(Data("clip: error: \(error)\n".utf8))
    throw ExitCode(1)
  }
}

/// Runs async work from a synchronous command (the root command stays synchronous: see `Clip.main`) on Swift's
/// thread pool, this thread waiting for its result.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
  let outcome = Mutex<Result<T, any Error>?>(nil)
  let done = DispatchSemaphore(value: 0)
  Task.detached {
    do {
      let value = try await body()
      outcome.withLock { $0 = .success(value) }
    } catch {
      outcome.withLock { $0 = .failure(error) }
    }
    done.signal()
  }
  done.wait()
  guard let result = outcome.withLock({ $0 }) else { throw ClipError(.system, "async work ended without a result") }
  return try result.get()
}

/// Loads an image index file.
func loadIndex(_ path: String) throws -> ImageIndex {
  let bytes = try ClipError.inContext(path) { try File.readAll(path) }
  return try ClipError.inContext(path) { try IndexFormat.decodeImage(bytes) }
}

/// Opens a reader over an index file, its blobs coming from `source` or the source the index recorded.
func openReader(_ path: String, source: String?) throws -> ImageReader {
  let index = try loadIndex(path)
  let imageSource = try openImageSource(source ?? index.source)
  return try ImageReader(index: index, source: imageSource)
}

/// Writes bytes to stdout.
func writeOut(_ bytes: some Collection<UInt8>) throws {
  let data = Array(bytes)
  var done = 0
  while done < data.count {
    let n = data.withUnsafeBytes { write(1, $0.baseAddress.map { $0 + done }, data.count - done) }
    if n < 0 && errno == EINTR { continue }
    guard n > 0 else { throw ClipError.system("write", "stdout") }
    done += n
  }
}

/// A one-line progress display on stderr when it is a terminal; silent otherwise.
final class ProgressLine: @unchecked Sendable {
  private let enabled = isatty(2) == 1
  private let lock = NSLock()
  private var last = Date.distantPast
  private let label: String

  init(_ label: String) { self.label = label }

  func update(_ done: UInt64, _ total: UInt64) {
    guard enabled else { return }
    lock.lock()
    defer { lock.unlock() }
    guard Date().timeIntervalSince(last) > 0.1 else { return }
    last = Date()
    let percent = total > 0 ? Double(done) * 100 / Double(total) : 0
    let line = String(format: "\r%@ %.1f / %.1f MB (%.0f%%)", label, Double(done) / 1e6, Double(total) / 1e6, percent)
    FileHandle.standardError.write(Data(line.utf8))
  }

  func finish() {
    guard enabled else { return }
    FileHandle.standardError.write(Data("\r\u{1b}[K".utf8))
  }
}

/// Parses sizes like `4194304`, `4M`, `512K`, `1G`.
func parseSize(_ text: String) throws -> UInt64 {
  let units: [Character: UInt64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
  var digits = text.uppercased()
  var scale: UInt64 = 1
  if digits.hasSuffix("IB") { digits.removeLast(2) } else if digits.hasSuffix("B") { digits.removeLast() }
  if let last = digits.last, let unit = units[last] {
    scale = unit
    digits.removeLast()
  }
  guard let value = UInt64(digits), value > 0 else {
    throw ClipError(.invalidArgument, "malformed size '\(text)' (e.g. 4M, 512K, 4194304)")
  }
  return value * scale
}

/// The raw bytes of a command-line argument. ArgumentParser hands over Strings, which replace bytes that are not
/// UTF-8; file names need not be UTF-8, so the original bytes are looked up in argv.
func rawArgument(_ decoded: String) -> [UInt8] {
  for index in 0..<Int(CommandLine.argc) {
    guard let pointer = CommandLine.unsafeArgv[index] else { continue }
    let raw = UnsafeRawBufferPointer(start: pointer, count: strlen(pointer))
    if String(decoding: raw, as: UTF8.self) == decoded { return Array(raw) }
  }
  return Array(decoded.utf8)
}
