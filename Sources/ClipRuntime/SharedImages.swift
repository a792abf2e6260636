import ClipCore
import ClipIndex
import ClipOCI
import ClipRegistry
import ClipStore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Files to warm in a new mount (`clip mount --warm`).
public enum StartupFiles {
  /// What nearly every container of a glibc image reads as it starts, besides its command: the runtime's user and
  /// group lookup, the dynamic loader, its cache and the C library; and what a program that sets its locale or asks
  /// the time reads (C.UTF-8's character table, which interpreters such as python load even when no locale is set,
  /// glibc's converter cache, the local time zone). Paths an image does not have are skipped.
  public static let common = [
    "/etc/passwd", "/etc/group", "/etc/ld.so.cache", "/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1",
    "/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/usr/lib/locale/C.utf8/LC_CTYPE",
    "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache", "/usr/lib/aarch64-linux-gnu/gconv/gconv-modules.cache",
    "/etc/localtime",
  ]
}

/// The host's shared image mounts: one read-only FUSE mount per image (per manifest digest), used by every container
/// of that image and released when the last one goes (at once, or after a keep-warm time).
struct SharedImages {
  let settings: HookSettings
  let actions: HookActions
  let log: @Sendable (String) -> Void

  private var layout: RuntimeLayout { settings.layout }

  /// Finds the image's index (the annotation's file, the index cache — without asking the registry when the reference
  /// was resolved before, unless `org.clip.pull` is `always` —, a published index) or makes one, keeping it in the
  /// index cache. Returns the image key (manifest digest hex) and the index path. Talks to the registry; call it
  /// without holding the state lock.
  func prepareIndex(_ request: ImageRequest) throws -> (key: String, index: String) {
    if let path = request.indexPath {
      let bytes = try ClipError.inContext(path) { try File.readAll(path) }
      if let expected = request.indexDigest, Digest.of(bytes) != expected {
        throw ClipError(.digestMismatch, "index \(path) has digest \(Digest.of(bytes)), annotation says \(expected)")
      }
      let index = try ClipError.inContext(path) { try IndexFormat.decodeImage(bytes) }
      return (index.manifestDigest.hex, path)
    }
    let platform = request.platform ?? .current
    let platformName = [platform.os, platform.architecture, platform.variant ?? ""].joined(separator: "/")
    let name = "\(request.reference) \(platformName)"
    let resolved = layout.reference(name)
    if !request.pullAlways, let key = Self.resolvedKey(resolved, name: name), Self.isUsable(layout.index(key)) {
      return (key, layout.index(key))
    }
    if let manifest = request.manifestDigest, !request.pullAlways, let known = knownIndex(manifest, request) {
      return known
    }
    let source = try openImageSource(request.reference, plainHTTP: request.plainHTTP, authFile: request.authFile)
    // An index published for the image is looked for while its config is fetched (both need only the manifest
    // digest), unless this host has the index already.
    let lookup = Background<Result<PublishedIndex.Blobs?, any Error>>()
    let image = try ClipError.inContext(request.reference) {
      guard let registry = source as? RegistrySource else { return try source.resolve(platform: platform) }
      return try registry.resolve(platform: platform) { manifest in
        guard !Self.isUsable(layout.index(manifest.hex)) else { return }
        lookup.start { Result { try registry.findPublishedBlobs(subject: manifest) } }
      }
    }
    let key = image.manifestDigest.hex
    let path = layout.index(key)
    defer { try? File.writeAtomically(resolved, Array("\(key)\n\(name)".utf8), sync: false) }
    if Self.isUsable(path) { return (key, path) }
    try FileLock.holding(path + ".lock") {
      guard !Self.isUsable(path) else { return }
      var indexer = ImageIndexer()
      indexer.platform = platform
      indexer.layerCache = layout.layers
      indexer.note = log
      let started = Date()
      let (bytes, profile) = try ClipError.inContext(request.reference) {
        try indexer.indexFile(source, image: image, lookup: lookup.wait())
      }
      if let profile { try File.writeAtomically(layout.profile(key), profile) }
      try File.writeAtomically(path, bytes)
      let elapsed = Int(Date().timeIntervalSince(started) * 1000)
      log("index of \(request.reference) (\(image.manifestDigest)) kept in \(path) after \(elapsed) ms")
    }
    return (key, path)
  }

  /// The image key recorded in `path` for `name` (a reference and platform), if the file is for that name (files are
  /// named by a 64-bit hash of it: `RuntimeLayout.reference`).
  static func resolvedKey(_ path: String, name: String) -> String? {
    guard let bytes = try? File.readAll(path) else { return nil }
    let lines = bytes.split(separator: UInt8(ascii: "\n"), maxSplits: 1, omittingEmptySubsequences: false)
    guard lines.count == 2, lines[1].elementsEqual(name.utf8), !lines[0].isEmpty else { return nil }
    return String(decoding: lines[0], as: UTF8.self)
  }

  /// The index of the image with manifest `manifest`, without resolving the reference: the cached one, or the one
  /// published for it (its blob fetched straight when the request names it). Nil when there is none, or it is unusable
  /// (said in the log): the caller then resolves the reference as usual.
  private func knownIndex(_ manifest: Digest, _ request: ImageRequest) -> (key: String, index: String)? {
    let key = manifest.hex
    let path = layout.index(key)
    if Self.isUsable(path) { return (key, path) }
    var indexer = ImageIndexer()
    indexer.note = log
    do {
      guard
        let registry = try openImageSource(
          request.reference, plainHTTP: request.plainHTTP, authFile: request.authFile) as? RegistrySource,
        let found = indexer.publishedIndex(
          registry, manifest: manifest, blobs: request.published, decodeLayers: false)
      else { return nil }
      if let profile = found.profile { try File.writeAtomically(layout.profile(key), profile) }
      try File.writeAtomically(path, found.bytes)
      log("index of \(request.reference) (\(manifest)) kept in \(path), without resolving the reference")
      return (key, path)
    } catch {
      log("cannot use the index published for \(manifest) (\(error)): resolving \(request.reference)")
      return nil
    }
  }

  /// Whether an index file is there: files in the index cache are written whole (atomically) after they were made
  /// or checked (a published one: its digest, its image frame, every frame's checksum), and the mount decodes (and
  /// checks) all of them again (`dropCachedIndexIfUnreadable`).
  private static func isUsable(_ path: String) -> Bool {
    var attributes = stat()
    return stat(path, &attributes) == 0 && attributes.st_size > 0
  }

  /// Makes sure the image is mounted and counts `container` as a user. Call holding the state lock.
  func acquire(
    key: String, index: String, request: ImageRequest, container: String, keepWarm: Int, command: String? = nil
  ) throws -> String {
    let root = layout.imageRoot(key)
    switch HostMounts.status(root) {
    case .live:
      break
    case .dead:
      log("the mount of image \(key.prefix(12)) lost its daemon: mounting it again")
      try HostMounts.unmount(root)
      try mount(key: key, index: index, request: request, keepWarm: keepWarm, command: command)
    case .absent:
      try mount(key: key, index: index, request: request, keepWarm: keepWarm, command: command)
    }
    let users = layout.users(key)
    try FileManager.default.createDirectory(atPath: users, withIntermediateDirectories: true)
    try File.writeAtomically("\(users)/\(container)", [], sync: false)
    return root
  }

  private func mount(key: String, index: String, request: ImageRequest, keepWarm: Int, command: String?) throws {
    let root = layout.imageRoot(key)
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    let pid: Int32
    do {
      pid = try actions.startMount(
        MountRequest(
          index: index, mountpoint: root, source: request.reference, plainHTTP: request.plainHTTP,
          authFile: request.authFile, prefetch: RuntimeLayout.prefetch(request.prefetch, index: index),
          cache: layout.cache,
          cacheSize: settings.cacheSize,
          stateRoot: layout.root, key: key, keepWarm: keepWarm,
          warm: (command.map { [$0] } ?? []) + StartupFiles.common))
    } catch {
      throw dropCachedIndexIfUnreadable(key: key, index: index, error: error)
    }
    try File.writeAtomically(layout.image(key) + "/pid", Array("\(pid)\n".utf8), sync: false)
    log("mounted image \(key.prefix(12)) at \(root) (daemon \(pid))")
  }

  /// After a mount of `index` failed: a published index is kept after only its image frame was decoded (the mount
  /// decodes the rest), so one in the index cache that does not decode is removed (with its profile), lest every start
  /// fail on it; the next start gets or makes the index again. Returns the error to throw.
  private func dropCachedIndexIfUnreadable(key: String, index: String, error: any Error) -> any Error {
    guard index == layout.index(key), let bytes = try? File.readAll(index) else { return error }
    do {
      _ = try IndexFormat.decodeImage(bytes)
      return error
    } catch let unreadable {
      unlink(index)
      unlink(layout.profile(key))
      log("removed the cached index \(index): \(unreadable)")
      return ClipError(.corrupt, "\(error)", context: ["the cached index was unreadable and is removed"])
    }
  }

  /// Stops counting `container` as a user; unmounts the image now when it was the last and `keepWarm` is 0 (otherwise
  /// the mount daemon releases it once its keep-warm time has passed: `ImageLease`). Call holding the state lock.
  func release(key: String, container: String, keepWarm: Int) throws {
    unlink("\(layout.users(key))/\(container)")
    guard users(key).isEmpty else { return }
    if keepWarm == 0 || HostMounts.status(layout.imageRoot(key)) != .live { try unmount(key: key) }
  }

  /// The containers using an image.
  func users(_ key: String) -> [String] { Self.users(layout, key) }

  static func users(_ layout: RuntimeLayout, _ key: String) -> [String] {
    (try? FileManager.default.contentsOfDirectory(atPath: layout.users(key))) ?? []
  }

  /// Unmounts an image, waits (briefly) for its daemon to exit, and removes its folder.
  func unmount(key: String) throws {
    let root = layout.imageRoot(key)
    try HostMounts.unmount(root)
    if let text = try? File.readAll(layout.image(key) + "/pid"),
      let pid = Int32(String(decoding: text, as: UTF8.self).trimmingASCIIWhitespace)
    {
      for _ in 0..<100 where HostMounts.startTime(of: pid) != nil { usleep(50_000) }
    }
    try FileTree.remove(layout.image(key))
    log("released image \(key.prefix(12))")
  }

  /// Whether an image mount is gone or dead (its daemon killed).
  func isDead(_ key: String) -> Bool { HostMounts.status(layout.imageRoot(key)) != .live }
}
