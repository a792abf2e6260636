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
  var cache = MountDaemon().cache

  @Option(help: "The most bytes the span cache keeps (least recently used spans are evicted).")
  var cacheSize = MountDaemon().cacheSize

  @Option(help: "Fetch ahead: none, all (the whole image in the background), or a profile file from --record.")
  var prefetch = MountDaemon().prefetch

  @Option(help: "Bytes per second for --prefetch all.")
  var prefetchRate = MountDaemon().prefetchRate

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
  var timeout = MountDaemon().timeout

  @OptionGroup var registry: RegistryOptions

  @Option(
    help: """
      With no --prefetch, opening a file fetches the rest of its directory's files in the background if they hold \
      at most this many bytes (0: never).
      """)
  var directoryReadahead = MountDaemon().directoryReadahead

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
  var keepWarm = MountDaemon().keepWarm

  /// The daemon these options describe.
  var daemon: MountDaemon {
    MountDaemon(
      image: image, mountpoint: mountpoint, cache: cache, cacheSize: cacheSize, prefetch: prefetch,
      prefetchRate: prefetchRate, record: record, warm: warm, source: source, layer: layer, timeout: timeout,
      plainHTTP: registry.plainHTTP, authfile: registry.authfile, directoryReadahead: directoryReadahead,
      noPassthrough: noPassthrough, readyFd: readyFd, leaseRoot: leaseRoot, leaseImage: leaseImage,
      keepWarm: keepWarm)
  }

  func run() throws {
    try reportingErrors {
      guard !foreground else { try daemon.serve() }
      try FileManager.default.createDirectory(atPath: MountService.runtimeDirectory, withIntermediateDirectories: true)
      let log = MountService.logFile(for: mountpoint)
      let arguments =
        Array(CommandLine.arguments.dropFirst()) + ["--foreground", "--ready-fd", "\(Daemon.readyDescriptor)"]
      try Daemon.spawn(arguments: arguments, log: log)
    }
  }
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
