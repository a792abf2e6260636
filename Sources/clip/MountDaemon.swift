import CClipShims
import ClipCore
import ClipFUSE
import ClipIndex
import ClipRegistry
import ClipRuntime
import ClipStore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A mount daemon: `clip mount --foreground`'s settings (the options' values and defaults) and its serving loop.
/// The hook and the snapshotter start their daemons with a fixed form of arguments that `fastStart` reads without
/// ArgumentParser, whose reflection over this many options costs a daemon's start ~3.5 ms (on the way to a new
/// image's first reads).
struct MountDaemon {
  var image = ""
  var mountpoint = ""
  var cache = "/var/lib/clip/cache"
  var cacheSize = "10G"
  var prefetch = "none"
  var prefetchRate = "200M"
  var record: String?
  var warm: [String] = []
  var source: String?
  var layer: String?
  var timeout = 20
  var plainHTTP = false
  var authfile: String?
  var directoryReadahead = "8M"
  var noPassthrough = false
  var readyFd: Int32?
  var leaseRoot: String?
  var leaseImage: String?
  var keepWarm = 0

  /// The daemon for `arguments` (after the executable's name) when they are `mount INDEX MOUNTPOINT --foreground`
  /// with only options the hook and the snapshotter pass (`HookWiring`, `LazyLayerMounts`), each as `--name value`;
  /// nil otherwise (ArgumentParser then parses them, and says what is wrong).
  static func fastStart(_ arguments: ArraySlice<String>) -> MountDaemon? {
    var rest = arguments
    guard rest.popFirst() == "mount", let image = rest.popFirst(), let mountpoint = rest.popFirst(),
      !image.hasPrefix("-"), !mountpoint.hasPrefix("-")
    else { return nil }
    var daemon = MountDaemon(image: image, mountpoint: mountpoint)
    var foreground = false
    while let name = rest.popFirst() {
      switch name {
      case "--foreground": foreground = true
      case "--plain-http": daemon.plainHTTP = true
      default:
        guard let value = rest.popFirst() else { return nil }
        switch name {
        case "--cache": daemon.cache = value
        case "--cache-size": daemon.cacheSize = value
        case "--prefetch": daemon.prefetch = value
        case "--source": daemon.source = value
        case "--layer": daemon.layer = value
        case "--authfile": daemon.authfile = value
        case "--warm": daemon.warm.append(value)
        case "--lease-root": daemon.leaseRoot = value
        case "--lease-image": daemon.leaseImage = value
        case "--ready-fd":
          guard let fd = Int32(value) else { return nil }
          daemon.readyFd = fd
        case "--keep-warm":
          guard let seconds = Int(value) else { return nil }
          daemon.keepWarm = seconds
        default: return nil
        }
      }
    }
    return foreground ? daemon : nil
  }

  /// Mounts and serves until unmounted (or, for a hook's daemon, until its containers are gone and its keep-warm
  /// time passed); ends the process.
  func serve() throws -> Never {
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
          try openImageSource(image, plainHTTP: plainHTTP, authFile: authfile))
      }
      let blobs = try openImageSource(
        source ?? index.source, plainHTTP: plainHTTP, readTimeout: timeout, authFile: authfile)
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
    log("mounted \(service.reader.index.source) on \(mountpoint)")
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
    // Fetches (a prefetch, a warm wave) may still be inside libcurl on other threads: end without running the
    // libraries' destructors under them (exit() would: libcrypto frees what a TLS transfer uses).
    fflush(nil)
    _exit(result < 0 ? 1 : 0)
  }
}
