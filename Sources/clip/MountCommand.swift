import ArgumentParser
import CClipShims
import ClipCore
import ClipFUSE
import ClipIndex
import ClipRegistry
import ClipRuntime
import ClipStore
import Foundation

/// `clip mount IMAGE.clip|SOURCE MOUNTPOINT`
struct MountCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mount", abstract: "Mount an image lazily through FUSE: only the spans that are read are fetched.")

  @Argument(help: "An index file, or an image source (indexed first, or its published index used).")
  var image: String

  @Argument(help: "An existing directory to mount on.")
  var mountpoint: String

  @Option(help: "The span cache shared by all mounts.")
  var cache = "/var/lib/clip/cache"

  @Option(help: "The most bytes the span cache keeps (least recently used spans are evicted).")
  var cacheSize = "10G"

  @Option(help: "Fetch ahead: none, all (the whole image in the background), or a profile file from --record.")
  var prefetch = "none"

  @Option(help: "Bytes per second for --prefetch all.")
  var prefetchRate = "200M"

  @Option(help: "Write the spans this mount's reads touched to FILE on unmount (a prefetch profile).")
  var record: String?

  @Option(
    help: ArgumentHelp(
      "Fetch this file right after mounting, on a few threads with the others (repeatable; a name without / is looked up on the image's PATH; missing files are skipped).",
      valueName: "PATH"))
  var warm: [String] = []

  @Option(help: "Read blobs from this source instead of the one the index recorded.")
  var source: String?

  @Option(help: "Serve only this layer (its digest), in overlay form: whiteouts as 0/0 devices, opaque directories.")
  var layer: String?

  @Option(help: "Seconds after which a read the registry does not answer fails with EIO.")
  var timeout = 20

  @OptionGroup var registry: RegistryOptions

  @Option(
    help: """
      With no --prefetch, opening a file fetches the rest of its directory's files in the background if they hold \
      at most this many bytes (0: never).
      """)
  var directoryReadahead = "8M"

  @Flag(
    help: "Serve every read from the daemon: no kernel passthrough, so no whole-file copies in the cache either.")
  var noPassthrough = false

  @Flag(help: "Stay in the foreground (default: detach once mounted).")
  var foreground = false

  @Option(help: .hidden)
  var readyFd: Int32?

  // Set by `clip hook`: the daemon holds an `ImageLease` and goes when its containers are gone.
  @Option(help: .hidden)
  var leaseRoot: String?
  @Option(help: .hidden)
  var leaseImage: String?
  @Option(help: .hidden)
  var keepWarm = 0

  func run() throws {
    try reportingErrors {
      guard !foreground else { return try serve() }
      try FileManager.default.createDirectory(atPath: MountService.runtimeDirectory, withIntermediateDirectories: true)
      let log = MountService.logFile(for: mountpoint)
      let arguments =
        Array(CommandLine.arguments.dropFirst()) + ["--foreground", "--ready-fd", "\(Daemon.readyDescriptor)"]
      try Daemon.spawn(arguments: arguments, log: log)
    }
  }

  private func serve() throws {
    // Span-sized buffers (512 KiB, 4 MiB in older indexes) go back to the system when freed (glibc would otherwise
    // keep tens of MiB in its arenas).
    _ = clip_set_mmap_threshold(256 << 10)
    // The warm wave's first requests would wait for libcurl and its libraries to load: load them while the index is
    // decoded.
    if !warm.isEmpty, let source, isRegistrySource(source) { CurlTransport.loadInBackground() }
    let log: @Sendable (String) -> Void = { message in
      let stamp = utcTimestamp()
      FileHandle.standardError.write(Data("\(stamp) clip mount: \(message)\n".utf8))
    }
    let service: MountService
    do {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw ClipError(.notFound, "mountpoint \(mountpoint) is not a directory")
      }
      let index: ImageIndex
      if FileManager.default.fileExists(atPath: image) {
        index = try loadIndex(image)
      } else {
        var indexer = ImageIndexer()
        indexer.note = { log($0) }
        index = try indexer.index(
          try openImageSource(image, plainHTTP: registry.plainHTTP, authFile: registry.authfile))
      }
      let blobs = try openImageSource(
        source ?? index.source, plainHTTP: registry.plainHTTP, readTimeout: timeout, authFile: registry.authfile)
      let disk = try DiskCache(root: cache, limit: try parseSize(cacheSize), warn: log)
      let policy: PrefetchPolicy =
        switch prefetch {
        case "none": .none
        case "all": .all(bytesPerSecond: try parseSize(prefetchRate))
        default: .profile(prefetch)
        }
      let layerNumber = try layer.map { text in
        let digest = try ClipError.inContext("--layer") { try Digest(text) }
        guard let number = index.layers.firstIndex(where: { $0.digest == digest }) else {
          throw ClipError(.notFound, "the image has no layer \(digest)")
        }
        return number
      }
      service = try MountService(
        index: index, source: blobs, mountpoint: mountpoint, cache: disk, prefetch: policy, record: record,
        warm: warm, layer: layerNumber, passthrough: !noPassthrough,
        directoryReadahead: directoryReadahead == "0" ? 0 : try parseSize(directoryReadahead), log: log)
      try service.start()
    } catch {
      if let readyFd { Daemon.report("\(error)", on: readyFd) }
      throw error
    }
    // From here on the daemon parses registry bytes: confine it (specs/mount.md).
    do {
      try Confinement.apply()
    } catch {
      log("cannot confine the daemon: \(error)")
      umount2(mountpoint, Int32(MNT_DETACH))
      if let readyFd { Daemon.report("\(error)", on: readyFd) }
      throw error
    }
    log("mounted \(index(service)) on \(mountpoint)")
    if let readyFd { Daemon.report("ready", on: readyFd) }
    // A hook's image daemon lives while containers of its image may start, each running two hook processes of this
    // same file: keep what those read from the file itself in the page cache (the relocated data and what precedes
    // it, ~7 MB, specs/hook.md); the code they run is this daemon's code, cached while it runs.
    if leaseRoot != nil, clip_keep_startup_pages() < 0 {
      log("cannot keep the executable's start-up pages cached: \(String(cString: strerror(errno)))")
    }
    // The lease's release ends the FUSE loop when the unmount is clean: then wait for it to finish its bookkeeping.
    let released = DispatchSemaphore(value: 0)
    if let leaseRoot, let leaseImage {
      let lease = try ImageLease(root: leaseRoot, key: leaseImage, keepWarm: keepWarm, log: log)
      let thread = Thread {
        lease.waitForRelease()
        released.signal()
        service.finishAbruptly()
      }
      thread.name = "clip-lease"
      thread.start()
    }
    let result = service.serve()
    if leaseImage != nil { _ = released.wait(timeout: .now() + 5) }
    log("unmounted \(mountpoint)")
    if result < 0 { throw ExitCode(1) }
  }

  private func index(_ service: MountService) -> String { service.reader.index.source }
}

/// `clip umount MOUNTPOINT`
struct UmountCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "umount", abstract: "Unmount a clip mount (its daemon then exits).")

  @Argument(help: "The mountpoint.")
  var mountpoint: String

  @Flag(help: "Detach now even if busy (the kernel finishes when the last user goes).")
  var lazy = false

  func run() throws {
    try reportingErrors {
      guard umount2(mountpoint, lazy ? Int32(MNT_DETACH) : 0) == 0 else {
        let error = ClipError.system("umount", mountpoint)
        if error.osErrno == EBUSY { throw error.adding("busy: retry with --lazy") }
        throw error
      }
      // Wait (briefly) for the daemon to notice and go.
      let socket = MountService.statsSocket(for: mountpoint)
      for _ in 0..<50 where FileManager.default.fileExists(atPath: socket) { usleep(100_000) }
    }
  }
}

/// `clip stats MOUNTPOINT`
struct StatsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats", abstract: "Show what a mount fetched, cache hits and misses, and read latency.")

  @Argument(help: "The mountpoint.")
  var mountpoint: String

  @Flag(help: "Prometheus text format.")
  var prometheus = false

  @Flag(help: "JSON.")
  var json = false

  func run() throws {
    try reportingErrors {
      let socket = MountService.statsSocket(for: mountpoint)
      let answer = try StatsEndpoint.query(socket, format: prometheus ? "prometheus" : "json")
      if prometheus || json { return try writeOut(Array(answer.utf8)) }
      guard let snapshot = try? JSONDecoder().decode(StatsSnapshot.self, from: Data(answer.utf8)) else {
        throw ClipError(.corrupt, "malformed answer from \(socket)")
      }
      let text = """
        fetched:   \(snapshot.bytesFetched) bytes in \(snapshot.spansFetched) spans and \(snapshot.spanStartsFetched) span starts, \(snapshot.requests) requests
        cache:     \(snapshot.cacheHits) hits, \(snapshot.cacheMisses) misses; \(snapshot.spansPrefetched) spans prefetched
        copies:    \(snapshot.filesCopied) whole files copied, \(snapshot.passthroughOpens) opens passed through to them
        reads:     \(snapshot.reads), latency p50 \(snapshot.readLatencyP50Ms) ms, p90 \(snapshot.readLatencyP90Ms) ms, p99 \(snapshot.readLatencyP99Ms) ms
        failures:  \(snapshot.failures)

        """
      try writeOut(Array(text.utf8))
    }
  }
}
