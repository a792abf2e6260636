import ClipCore
import ClipIndex
import ClipRegistry
import ClipStore
import Foundation
import Synchronization

/// What to fetch ahead of reads.
public enum PrefetchPolicy: Sendable, Equatable {
  /// Nothing: only what is read.
  case none
  /// The whole image, in the background, at most `bytesPerSecond`, yielding to reads.
  case all(bytesPerSecond: UInt64)
  /// The spans a profile lists, in parallel, right after mounting.
  case profile(String)
}

/// One lazily mounted image: the FUSE server over a span store with the shared disk cache, its statistics endpoint,
/// prefetching, and profile recording. `clip mount` is its command line.
public final class MountService: @unchecked Sendable {
  /// Where per-mount sockets and logs live.
  public static let runtimeDirectory = "/run/clip/mounts"

  /// The socket `clip stats` asks for a mount's numbers (resolving the path touches the mountpoint).
  public static func statsSocket(for mountpoint: String) -> String {
    let canonical = URL(fileURLWithPath: mountpoint).standardizedFileURL.resolvingSymlinksInPath().path
    return "\(runtimeDirectory)/\(Digest.of(Array(canonical.utf8)).hex.prefix(16)).sock"
  }

  /// The log of a mount's daemon (started in the background).
  public static func logFile(for mountpoint: String) -> String {
    String(statsSocket(for: mountpoint).dropLast(".sock".count)) + ".log"
  }

  /// The image.
  public let reader: ImageReader
  /// The filesystem.
  public let server: FuseServer
  private let prefetch: PrefetchPolicy
  private let record: String?
  /// The one layer served (`--layer`), if not the merged image: prefetching stays within it.
  private let layer: Int?
  private let warm: [String]
  private let log: @Sendable (String) -> Void
  private var endpoint: StatsEndpoint?
  private let socketPath: String

  /// Prepares a mount of `index` (blobs from `source`) at `mountpoint`, caching spans in `cache` (nil: memory only);
  /// with `layer`, of that layer's own tree in overlay form (a lower layer for overlayfs). The files at `warm` are
  /// fetched as soon as it serves. With `passthrough`, large cached files are read by the kernel (`FuseServer`).
  /// Without a prefetch policy, opening a file fetches its directory's files in the background if they hold at most
  /// `directoryReadahead` bytes (0: never; `DirectoryReadahead`).
  public init(
    index: ImageIndex, source: any ImageSource, mountpoint: String, cache: DiskCache?, prefetch: PrefetchPolicy,
    record: String?, warm: [String] = [], layer: Int? = nil, passthrough: Bool = true,
    directoryReadahead: UInt64 = 0, log: @escaping @Sendable (String) -> Void
  ) throws {
    self.layer = layer
    reader = try ImageReader(
      index: index, source: source, disk: cache, memorySpans: 8, layer: layer, recording: record != nil)
    // A profile says what will be read, `all` fetches everything anyway, and a recording notes only what is read:
    // no guessing by directory then.
    let readahead =
      if prefetch == .none, record == nil, directoryReadahead > 0 {
        DirectoryReadahead(tree: reader.tree, store: reader.store, budget: directoryReadahead)
      } else {
        DirectoryReadahead?.none
      }
    server = FuseServer(
      tree: reader.tree, store: reader.store, mountpoint: mountpoint, passthrough: passthrough,
      directoryReadahead: readahead, log: log)
    self.prefetch = prefetch
    self.record = record
    self.warm = warm
    self.log = log
    // Resolved now: once mounted, looking at the mountpoint would wait for this very server.
    socketPath = Self.statsSocket(for: mountpoint)
  }

  /// Mounts and starts answering `clip stats`.
  public func start() throws {
    try server.mount()
    do {
      try FileManager.default.createDirectory(atPath: Self.runtimeDirectory, withIntermediateDirectories: true)
      endpoint = try StatsEndpoint(path: socketPath, stats: reader.store.stats)
    } catch {
      log("statistics endpoint unavailable: \(error)")
    }
  }

  /// Serves until unmounted or signalled, prefetching meanwhile; then writes the profile if asked. Returns libfuse's
  /// loop result.
  public func serve(threads: UInt32 = 16) -> Int32 {
    startWarming()
    startPrefetch()
    let result = server.run(threads: threads)
    // Before the endpoint goes (`clip umount` waits for that): the cache complete, the profile written.
    reader.store.flushWrites()
    writeProfile()
    endpoint?.close()
    return result
  }

  /// Ends the daemon now, without waiting for the kernel to end the FUSE session (a detached mount still in use):
  /// writes the profile if asked, closes the statistics endpoint, and exits, which aborts the connection.
  public func finishAbruptly() -> Never {
    reader.store.flushWrites()
    writeProfile()
    endpoint?.close()
    log("exiting")
    exit(0)
  }

  private func writeProfile() {
    guard let record else { return }
    let profile = PrefetchProfile(spans: reader.store.touchedSpans)
    do {
      try File.writeAtomically(record, Array(profile.text.utf8))
    } catch {
      log("cannot write the profile \(record): \(error)")
    }
  }

  /// Fetches the `warm` files and the libraries they need in the background (`Warming`).
  private func startWarming() {
    let reader = self.reader
    let files = Warming.files(named: warm, in: reader)
    guard !files.isEmpty else { return }
    let log = self.log
    let thread = Thread {
      let started = Date()
      let libraries = Warming.fetch(files, in: reader)
      log(
        "warmed \(files.count) files and \(libraries) libraries they need in "
          + "\(Int(Date().timeIntervalSince(started) * 1000)) ms")
    }
    thread.name = "clip-warm"
    thread.start()
  }

  private func startPrefetch() {
    let store = reader.store
    let log = self.log
    let served = layer
    let within: @Sendable ([SpanStore.Position]) -> [SpanStore.Position] = { spans in
      spans.filter { served == nil || $0.layer == served }
    }
    let work: (@Sendable () -> Void)?
    switch prefetch {
    case .none:
      work = nil
    case .all(let rate):
      work = {
        store.prefetch(within(store.allSpans), concurrency: 2, bytesPerSecond: rate, yieldToReads: true)
        log("prefetch of the whole image done")
      }
    case .profile(let path):
      work = {
        do {
          let profile = try PrefetchProfile(parsing: String(decoding: try File.readAll(path), as: UTF8.self))
          let spans = within(store.positions(of: profile.spans))
          store.prefetch(spans, concurrency: 16, bytesPerSecond: 0, yieldToReads: false)
          log("prefetched \(spans.count) spans from the profile \(path)")
        } catch {
          log("cannot use the prefetch profile \(path): \(error)")
        }
      }
    }
    if let work {
      let thread = Thread { work() }
      thread.name = "clip-prefetch"
      thread.start()
    }
  }
}
