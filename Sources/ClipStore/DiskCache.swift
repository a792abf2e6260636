import ClipCore
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Identifies a decoded span: the layer and the tar-stream range it covers (so indexes of one layer made with
/// different span sizes never mix their spans).
public struct SpanKey: Hashable, Sendable, CustomStringConvertible {
  /// The layer blob digest.
  public let layer: Digest
  /// The tar-stream range of the span.
  public let range: Range<UInt64>

  /// Creates a key.
  public init(layer: Digest, range: Range<UInt64>) {
    self.layer = layer
    self.range = range
  }

  /// `sha256:…/START-END`.
  public var description: String { "\(layer.short)/\(range.lowerBound)-\(range.upperBound)" }
}

/// The on-disk cache of decoded spans, shared by every mount on the host: `ROOT/<layer hex>/<start>-<end>`, each
/// file written whole and renamed into place, so a file that exists is complete and verified. An entry is any range
/// of a layer's tar stream: a span, a span's start, or a whole file's data copied from cached spans (for kernel
/// passthrough). It keeps under a size
/// limit by evicting the least recently used spans, and finds its files again after a restart.
///
/// ## Concurrency model
/// Safe to share between threads: the index of files (sizes, last use) is behind one mutex; file I/O happens outside.
public final class DiskCache: Sendable {
  /// The cache directory.
  public let root: String
  /// The most bytes the cache keeps.
  public let limit: UInt64
  private let state: Mutex<State>
  private let warn: @Sendable (String) -> Void

  struct State {
    var entries: [SpanKey: (size: UInt64, used: UInt64)] = [:]
    /// Recently used span files, kept open: reopening per read would restart the kernel's readahead each time.
    var open: [SpanKey: File] = [:]
    var openOrder: [SpanKey] = []
    var total: UInt64 = 0
    var clock: UInt64 = 0
    var fullWarned = false
  }

  /// Opens (creating) the cache at `root`, indexing the spans already there (oldest modification first).
  public init(root: String, limit: UInt64, warn: @escaping @Sendable (String) -> Void = { _ in }) throws {
    self.root = root
    self.limit = limit
    self.warn = warn
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    var state = State()
    var found: [(SpanKey, UInt64, Double)] = []
    for layer in (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? [] {
      guard let digest = try? Digest("sha256:" + layer) else { continue }
      for name in (try? FileManager.default.contentsOfDirectory(atPath: root + "/" + layer)) ?? [] {
        let path = root + "/" + layer + "/" + name
        let parts = name.split(separator: "-")
        guard parts.count == 2, let start = UInt64(parts[0]), let end = UInt64(parts[1]), end > start else {
          if !Self.isBeingWritten(name) { unlink(path) }  // a temporary file left by a crash
          continue
        }
        var st = stat()
        guard stat(path, &st) == 0 else { continue }
        found.append(
          (SpanKey(layer: digest, range: start..<end), UInt64(st.st_size), Double(st.st_mtim.tv_sec)))
      }
    }
    for (key, size, _) in found.sorted(by: { $0.2 < $1.2 }) {
      state.clock += 1
      state.entries[key] = (size, state.clock)
      state.total += size
    }
    self.state = Mutex(state)
  }

  /// Whether `name` is a temporary file (`File.writeAtomically`: `….tmp-PID-RANDOM`) of a process still running:
  /// another mount sharing the cache may be writing it now.
  static func isBeingWritten(_ name: String) -> Bool {
    guard let marker = name.range(of: ".tmp-"),
      let pid = name[marker.upperBound...].split(separator: "-").first.flatMap({ Int32($0) }), pid > 0
    else { return false }
    return kill(pid, 0) == 0 || errno == EPERM
  }

  func path(_ key: SpanKey) -> String { "\(root)/\(key.layer.hex)/\(key.range.lowerBound)-\(key.range.upperBound)" }

  static let openFiles = 64

  /// The cached span, opened for reading, or nil.
  public func open(_ key: SpanKey) -> File? {
    let (known, kept) = state.withLock { state -> (Bool, File?) in
      guard state.entries[key] != nil else { return (false, nil) }
      state.clock += 1
      state.entries[key]?.used = state.clock
      return (true, state.open[key])
    }
    if let kept { return kept }
    guard known else { return nil }
    guard let file = try? File(path: path(key)) else {
      state.withLock { state in
        if let entry = state.entries.removeValue(forKey: key) { state.total -= entry.size }
      }
      return nil
    }
    // No POSIX_FADV_WILLNEED of the whole span here: it reads 4 MiB in single pages, in the reader's thread, even for
    // a small file; the kernel's readahead on our reads brings in what is read, in large folios.
    keepOpen(key, file)
    return file
  }

  private func keepOpen(_ key: SpanKey, _ file: File) {
    state.withLock { state in
      if state.open.updateValue(file, forKey: key) == nil { state.openOrder.append(key) }
      while state.openOrder.count > Self.openFiles {
        state.open[state.openOrder.removeFirst()] = nil
      }
    }
  }

  /// Whether `key` is cached (its last use is not changed).
  public func contains(_ key: SpanKey) -> Bool { state.withLock { $0.entries[key] != nil } }

  /// Stores a verified span; returns the cache file opened for reading, or nil if it could not be stored (a full
  /// disk is reported once, and reads go on from memory).
  @discardableResult
  public func store(_ key: SpanKey, _ bytes: [UInt8]) -> File? {
    write(key, size: UInt64(bytes.count)) { file in try bytes.withUnsafeBytes { try file.write($0) } }
  }

  /// Stores the concatenation of `pieces` (ranges of cached files, in order) as the entry `key`, copied by the
  /// kernel: a whole file's data, for kernel passthrough. Returns it opened for reading, or nil.
  @discardableResult
  public func storeCopy(_ key: SpanKey, of pieces: [(file: File, offset: UInt64, count: Int)]) -> File? {
    write(key, size: pieces.reduce(0) { $0 + UInt64($1.count) }) { file in
      for piece in pieces { try file.append(from: piece.file, offset: piece.offset, count: piece.count) }
    }
  }

  /// Writes the entry `key` atomically with `fill`, accounts for it and evicts the least recently used entries over
  /// the limit.
  private func write(_ key: SpanKey, size: UInt64, _ fill: (File) throws -> Void) -> File? {
    let target = path(key)
    do {
      try FileManager.default.createDirectory(
        atPath: "\(root)/\(key.layer.hex)", withIntermediateDirectories: true)
      try File.writeAtomically(target, fill)  // synced: after a crash a cache file is whole or absent
    } catch let error as ClipError {
      let report = state.withLock { state -> Bool in
        defer { state.fullWarned = true }
        return !state.fullWarned
      }
      if report { warn("cannot write the span cache in \(root) (\(error)): serving from the network") }
      return nil
    } catch {
      return nil
    }
    let evict = state.withLock { state -> [SpanKey] in
      state.clock += 1
      if let old = state.entries[key] { state.total -= old.size }
      state.entries[key] = (size, state.clock)
      state.total += size
      var victims: [SpanKey] = []
      if state.total > limit {
        for (victim, entry) in state.entries.sorted(by: { $0.value.used < $1.value.used }) {
          guard state.total > limit, victim != key else { continue }
          state.entries[victim] = nil
          state.open[victim] = nil
          state.openOrder.removeAll { $0 == victim }
          state.total -= entry.size
          victims.append(victim)
        }
      }
      return victims
    }
    for victim in evict { unlink(path(victim)) }  // open readers keep their file until they close it
    guard let file = try? File(path: target) else { return nil }
    keepOpen(key, file)
    return file
  }

  /// Bytes held now.
  public var size: UInt64 { state.withLock { $0.total } }
}
