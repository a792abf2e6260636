import CClipShims
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An open file descriptor with the few calls clip needs, each retried on EINTR and turned into a `ClipError`.
public final class File: @unchecked Sendable {
  /// The raw descriptor.
  public let fd: Int32
  /// The path it was opened with, for messages.
  public let path: String

  /// Opens `path` with `open(2)` flags.
  public init(path: String, flags: Int32 = O_RDONLY, mode: mode_t = 0o644) throws {
    let fd = retryingEINTR { open(path, flags | O_CLOEXEC, mode) }
    guard fd >= 0 else { throw ClipError.system("open", path) }
    self.fd = fd
    self.path = path
  }

  /// Takes ownership of an open descriptor.
  public init(adopting fd: Int32, path: String) {
    self.fd = fd
    self.path = path
  }

  deinit { close(fd) }

  /// The file's size in bytes.
  public func size() throws -> UInt64 {
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw ClipError.system("stat", path) }
    return UInt64(st.st_size)
  }

  /// Reads up to `buffer.count` bytes at the current position; 0 at end of file.
  public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = retryingEINTR { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    guard n >= 0 else { throw ClipError.system("read", path) }
    return n
  }

  /// Reads exactly `buffer.count` bytes at `offset`, or throws if the file ends first.
  public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws {
    var done = 0
    while done < buffer.count {
      let n = retryingEINTR {
        pread(fd, buffer.baseAddress.map { $0 + done }, buffer.count - done, off_t(offset) + off_t(done))
      }
      guard n >= 0 else { throw ClipError.system("read", path) }
      guard n > 0 else {
        throw ClipError(.corrupt, "\(path) ends at \(offset + UInt64(done)), before \(offset + UInt64(buffer.count))")
      }
      done += n
    }
  }

  /// Reads `count` bytes at `offset`.
  public func read(count: Int, at offset: UInt64) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: count)
    try bytes.withUnsafeMutableBytes { try read(into: $0, at: offset) }
    return bytes
  }

  /// Writes all of `bytes`.
  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    var done = 0
    while done < bytes.count {
      let n = retryingEINTR { Glibc.write(fd, bytes.baseAddress.map { $0 + done }, bytes.count - done) }
      guard n >= 0 else { throw ClipError.system("write", path) }
      done += n
    }
  }

  /// Appends `count` bytes at `offset` of `source` at the current position, copied by the kernel
  /// (`copy_file_range`; through a buffer where the filesystems cannot).
  public func append(from source: File, offset: UInt64, count: Int) throws {
    var from = off_t(offset)
    var left = count
    while left > 0 {
      let n = retryingEINTR { clip_copy_file_range(source.fd, &from, fd, left) }
      if n < 0, [EXDEV, EINVAL, ENOSYS, EOPNOTSUPP].contains(errno) { break }
      guard n >= 0 else { throw ClipError.system("copy_file_range", path) }
      guard n > 0 else { throw ClipError(.corrupt, "\(source.path) ends at \(from), before \(offset + UInt64(count))") }
      left -= n
    }
    guard left > 0 else { return }
    let chunk = try source.read(count: left, at: UInt64(from))
    try chunk.withUnsafeBytes { try write($0) }
  }

  /// Flushes the file's data to stable storage.
  public func sync() throws {
    guard fsync(fd) == 0 else { throw ClipError.system("fsync", path) }
  }

  /// Reads a whole file (also one whose size the system does not tell, like those under /proc).
  public static func readAll(_ path: String) throws -> [UInt8] {
    let file = try File(path: path)
    let size = try file.size()
    return size > 0 ? try file.read(count: Int(size), at: 0) : try file.readToEnd()
  }

  /// Reads from the current position to the end (of a pipe: until the writer closes it).
  public func readToEnd() throws -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
      let count = try chunk.withUnsafeMutableBytes { try read(into: $0) }
      guard count > 0 else { return bytes }
      bytes += chunk[0..<count]
    }
  }

  /// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced (unless `sync` is false:
  /// caches that can be rebuilt skip it), then renamed over `path`. Nothing is left at `path` (or beside it) if
  /// writing fails.
  public static func writeAtomically(_ path: String, _ bytes: [UInt8], sync: Bool = true) throws {
    try writeAtomically(path, sync: sync) { file in try bytes.withUnsafeBytes { try file.write($0) } }
  }

  /// Writes `path` atomically with `write`, which fills the temporary file it is given: the same guarantees as
  /// `writeAtomically(_:_:sync:)`.
  public static func writeAtomically(_ path: String, sync: Bool = true, _ write: (File) throws -> Void) throws {
    let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    do {
      let file = try File(path: temporary, flags: O_WRONLY | O_CREAT | O_EXCL)
      try write(file)
      if sync { try file.sync() }
      guard rename(temporary, path) == 0 else { throw ClipError.system("rename", path) }
    } catch {
      unlink(temporary)
      throw error
    }
  }
}

/// Calls `body` again while it fails with EINTR.
@inlinable
public func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> T {
  while true {
    let result = body()
    if result < 0 && errno == EINTR { continue }
    return result
  }
}
