import ClipCore
import ContainerdAPI
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Layers that can be mounted lazily (the executable wires this to clip's FUSE mounts; the snapshotter never sees
/// FUSE). A mounted layer is its tree in overlay form, usable as an overlayfs lower layer.
public protocol LazyLayers: Sendable {
  /// Mounts the layer that `labels` identify (see `RemoteLabels`) at `path`, an empty folder, and returns once it
  /// serves. Throws when the labels name no layer it can reach.
  func mount(labels: [String: String], at path: String) throws
  /// Unmounts what `mount` made at `path` (nothing mounted there is fine).
  func unmount(_ path: String)
}

/// A snapshotter with the semantics of containerd's overlayfs snapshotter (specs/snapshotter.md): each snapshot owns a
/// folder `ROOT/snapshots/ID/fs` (and `work` for overlayfs), active snapshots mount as an overlayfs over their
/// committed ancestors (a bind mount when they have none), views mount read-only.
///
/// Metadata lives in one file, `ROOT/metadata.json`, rewritten atomically (temporary file, fsync, rename) by every
/// change while the snapshotter's lock is held: a crash leaves the old or the new state, never a mix. Folders are
/// created before and removed after the metadata change, so a crash can only leave a folder nothing refers to, which
/// `cleanup` removes.
public final class Snapshotter: Sendable {
  /// The root folder.
  public let root: String
  private let state: Mutex<Database>
  private let log: @Sendable (String) -> Void
  private let lazy: (any LazyLayers)?
  /// Folders of lazy layers being mounted, not yet in the metadata (Cleanup leaves them).
  private let pending = Mutex<Set<UInt64>>([])

  struct Record: Codable, Sendable {
    var id: UInt64
    var info: SnapshotInfo
    var usage: SnapshotUsage?
  }

  struct Database: Codable, Sendable {
    var nextID: UInt64 = 1
    var snapshots: [String: Record] = [:]

    /// The folder number for a new snapshot.
    mutating func reserveID() -> UInt64 {
      defer { nextID += 1 }
      return nextID
    }
  }

  /// Opens (creating) the snapshotter at `root`, finding every snapshot a previous run recorded. `log` hears of
  /// folders that could not be removed (Cleanup retries them).
  public init(
    root: String, lazy: (any LazyLayers)? = nil, log: @escaping @Sendable (String) -> Void = { _ in }
  ) throws {
    self.root = root
    self.lazy = lazy
    self.log = log
    try FileManager.default.createDirectory(atPath: root + "/snapshots", withIntermediateDirectories: true)
    var database = Database()
    if let bytes = try? File.readAll(root + "/metadata.json") {
      do {
        database = try JSONDecoder().decode(Database.self, from: Data(bytes))
      } catch {
        throw ClipError(.corrupt, "snapshotter metadata \(root)/metadata.json: \(error)")
      }
    }
    state = Mutex(database)
  }

  // MARK: - Operations

  /// Creates an active snapshot `key` on `parent` (a committed snapshot, or "" for none) and returns its mounts.
  ///
  /// With the remote-snapshotter labels (`RemoteLabels`: the target chain ID and the layer's identity) and a
  /// `LazyLayers`, it mounts the layer lazily, commits it under the target name marked remote, and answers
  /// AlreadyExists, so containerd skips downloading the layer. If the layer cannot be mounted it says so in the log
  /// and prepares a plain snapshot (containerd then pulls the layer as usual).
  public func prepare(key: String, parent: String, labels: [String: String]) throws -> [SnapshotMount] {
    if let lazy, let target = labels[RemoteLabels.targetRef], labels[RemoteLabels.layerDigest] != nil {
      try prepareRemote(target: target, parent: parent, labels: labels, lazy: lazy)
    }
    return try create(.active, key: key, parent: parent, labels: labels)
  }

  /// Mounts a lazy layer as committed snapshot `target` and throws AlreadyExists; returns to fall back.
  private func prepareRemote(target: String, parent: String, labels: [String: String], lazy: any LazyLayers) throws {
    let id: UInt64 = try state.withLock { database in
      try Self.checkNew(target, parent: parent, in: database, what: "target snapshot")
      var changed = database
      let id = changed.reserveID()
      try save(changed)
      database = changed
      return id
    }
    let fs = folder(id) + "/fs"
    let layer = labels[RemoteLabels.layerDigest] ?? "?"
    pending.withLock { _ = $0.insert(id) }
    defer { pending.withLock { _ = $0.remove(id) } }
    do {
      try FileManager.default.createDirectory(atPath: fs, withIntermediateDirectories: true)
      try lazy.mount(labels: labels, at: fs)
    } catch {
      log("layer \(layer) cannot be mounted lazily (\(error)): falling back to a normal pull of it")
      discard(folder(id))
      return
    }
    try state.withLock { database in
      guard database.snapshots[target] == nil else {
        lazy.unmount(fs)
        discard(folder(id))
        throw SnapshotError(.alreadyExists, "target snapshot \(target) already exists")
      }
      let now = Date()
      var remoteLabels = labels
      remoteLabels[RemoteLabels.remote] = "remote snapshot"
      var changed = database
      changed.snapshots[target] = Record(
        id: id,
        info: SnapshotInfo(
          name: target, parent: parent, kind: .committed, created: now, updated: now, labels: remoteLabels),
        usage: SnapshotUsage(size: 0, inodes: 0))
      do {
        try save(changed)
      } catch {
        lazy.unmount(fs)
        discard(folder(id))
        throw error
      }
      database = changed
    }
    log("layer \(layer) mounted lazily as snapshot \(target)")
    throw SnapshotError(.alreadyExists, "target snapshot \(target) already exists (mounted lazily)")
  }

  /// Mounts again the lazy layers whose mounts are gone (after a reboot, or a daemon that died). Failures are logged.
  public func restoreLazyLayers() {
    guard let lazy else { return }
    let remote = state.withLock { $0.snapshots.values.filter { $0.info.labels[RemoteLabels.remote] != nil } }
    for record in remote {
      let fs = folder(record.id) + "/fs"
      var here = Glibc.stat()
      var above = Glibc.stat()
      let mounted =
        lstat(fs, &here) == 0 && lstat(folder(record.id), &above) == 0 && here.st_dev != above.st_dev
      guard !mounted else { continue }
      lazy.unmount(fs)  // a dead mount ("transport endpoint is not connected")
      do {
        try lazy.mount(labels: record.info.labels, at: fs)
        log("remounted lazy snapshot \(record.info.name)")
      } catch {
        log("cannot remount lazy snapshot \(record.info.name): \(error)")
      }
    }
  }

  /// Creates a read-only view `key` of `parent` and returns its mounts.
  public func view(key: String, parent: String, labels: [String: String]) throws -> [SnapshotMount] {
    try create(.view, key: key, parent: parent, labels: labels)
  }

  /// The mounts of an active snapshot or view.
  public func mounts(key: String) throws -> [SnapshotMount] {
    try state.withLock { database in
      let record = try Self.record(key, in: database)
      guard record.info.kind != .committed else {
        throw SnapshotError(.failedPrecondition, "snapshot \(key) is committed, not active or a view")
      }
      return try mounts(record, in: database)
    }
  }

  /// Commits active snapshot `key` as `name`.
  public func commit(name: String, key: String, labels: [String: String]) throws {
    try Self.check(labels)
    try state.withLock { database in
      var record = try Self.record(key, in: database)
      guard database.snapshots[name] == nil else {
        throw SnapshotError(.alreadyExists, "snapshot \(name) already exists")
      }
      guard record.info.kind == .active else {
        throw SnapshotError(.failedPrecondition, "snapshot \(key) is \(record.info.kind.rawValue), not active")
      }
      let now = Date()
      record.usage = try usage(of: record.id)
      record.info = SnapshotInfo(
        name: name, parent: record.info.parent, kind: .committed, created: now, updated: now, labels: labels)
      var changed = database
      changed.snapshots[key] = nil
      changed.snapshots[name] = record
      try save(changed)
      database = changed
      discard(folder(record.id) + "/work")
    }
  }

  /// Removes snapshot `key` (one that no other snapshot has as parent).
  public func remove(key: String) throws {
    try state.withLock { database in
      let record = try Self.record(key, in: database)
      if let child = database.snapshots.values.first(where: { $0.info.parent == key }) {
        throw SnapshotError(
          .failedPrecondition, "cannot remove snapshot \(key): snapshot \(child.info.name) has it as parent")
      }
      var changed = database
      changed.snapshots[key] = nil
      try save(changed)
      database = changed
      if record.info.labels[RemoteLabels.remote] != nil { lazy?.unmount(folder(record.id) + "/fs") }
      discard(folder(record.id))
    }
  }

  /// The info of snapshot `key`.
  public func stat(key: String) throws -> SnapshotInfo {
    try state.withLock { try Self.record(key, in: $0).info }
  }

  /// Updates the labels of snapshot `info.name`: all of them when `fieldPaths` is empty or holds `labels`, the named
  /// ones for `labels.NAME` paths (a name missing from `info.labels` is removed). Other fields are immutable.
  public func update(_ info: SnapshotInfo, fieldPaths: [String]) throws -> SnapshotInfo {
    try Self.check(info.labels)
    return try state.withLock { database in
      var record = try Self.record(info.name, in: database)
      var labels = record.info.labels
      if fieldPaths.isEmpty {
        labels = info.labels
      } else {
        for path in fieldPaths {
          if path == "labels" {
            labels = info.labels
          } else if path.hasPrefix("labels.") {
            let name = String(path.dropFirst("labels.".count))
            labels[name] = info.labels[name]
          } else {
            throw SnapshotError(.invalidArgument, "cannot update \(path) of snapshot \(info.name): it is immutable")
          }
        }
      }
      record.info.labels = labels
      record.info.updated = Date()
      var changed = database
      changed.snapshots[info.name] = record
      try save(changed)
      database = changed
      return record.info
    }
  }

  /// Every snapshot matching any of `filters` (containerd's filter syntax; none: all).
  public func list(filters: [String]) throws -> [SnapshotInfo] {
    let parsed = try filters.map { try SnapshotFilter(parsing: $0) }
    return state.withLock { database in
      database.snapshots.values.map(\.info).filter { info in parsed.isEmpty || parsed.contains { $0.matches(info) } }
        .sorted { $0.name < $1.name }
    }
  }

  /// The disk usage of snapshot `key`: measured now for an active snapshot, as committed otherwise.
  public func usage(key: String) throws -> SnapshotUsage {
    let record = try state.withLock { try Self.record(key, in: $0) }
    if record.info.kind == .active { return try usage(of: record.id) }
    return record.usage ?? SnapshotUsage(size: 0, inodes: 0)
  }

  /// Removes folders that no snapshot refers to (left by a crash or a removal that could not finish).
  public func cleanup() throws {
    try state.withLock { database in
      let used = Set(database.snapshots.values.map { String($0.id) } + pending.withLock { $0.map { String($0) } })
      let present = (try? FileManager.default.contentsOfDirectory(atPath: root + "/snapshots")) ?? []
      for name in present where !used.contains(name) {
        try FileTree.remove(root + "/snapshots/" + name)
      }
    }
  }

  // MARK: - Internals

  private func create(_ kind: SnapshotKind, key: String, parent: String, labels: [String: String]) throws
    -> [SnapshotMount]
  {
    guard !key.isEmpty else { throw SnapshotError(.invalidArgument, "a snapshot key must not be empty") }
    try Self.check(labels)
    return try state.withLock { database in
      try Self.checkNew(key, parent: parent, in: database, what: "snapshot")
      var changed = database
      let id = changed.reserveID()
      let folder = folder(id)
      do {
        try FileManager.default.createDirectory(atPath: folder + "/fs", withIntermediateDirectories: true)
        if kind == .active {
          try FileManager.default.createDirectory(atPath: folder + "/work", withIntermediateDirectories: true)
        }
        // The snapshot's root folder is the container's root: 0755 like overlayfs's, whatever the umask.
        chmod(folder + "/fs", 0o755)
      } catch {
        try? FileTree.remove(folder)
        throw SnapshotError(.internal, "cannot create \(folder): \(error)")
      }
      let now = Date()
      let record = Record(
        id: id, info: SnapshotInfo(name: key, parent: parent, kind: kind, created: now, updated: now, labels: labels))
      changed.snapshots[key] = record
      do {
        try save(changed)
      } catch {
        try? FileTree.remove(folder)
        throw error
      }
      database = changed
      return try mounts(record, in: database)
    }
  }

  private func mounts(_ record: Record, in database: Database) throws -> [SnapshotMount] {
    var lowers: [String] = []
    var parent = record.info.parent
    while !parent.isEmpty {
      let ancestor = try Self.record(parent, in: database, what: "parent")
      lowers.append(folder(ancestor.id) + "/fs")
      parent = ancestor.info.parent
    }
    let own = folder(record.id)
    switch (record.info.kind, lowers.count) {
    case (.active, 0):
      return [SnapshotMount(type: "bind", source: own + "/fs", options: ["rw", "rbind"])]
    case (.active, _):
      return [
        SnapshotMount(
          type: "overlay", source: "overlay",
          options: ["workdir=\(own)/work", "upperdir=\(own)/fs", "lowerdir=" + lowers.joined(separator: ":")])
      ]
    case (_, 0):
      return [SnapshotMount(type: "bind", source: own + "/fs", options: ["ro", "rbind"])]
    case (_, 1):
      return [SnapshotMount(type: "bind", source: lowers[0], options: ["ro", "rbind"])]
    default:
      return [SnapshotMount(type: "overlay", source: "overlay", options: ["lowerdir=" + lowers.joined(separator: ":")])]
    }
  }

  private func folder(_ id: UInt64) -> String { "\(root)/snapshots/\(id)" }

  /// Removes a folder the metadata no longer needs; a failure is logged and left to Cleanup.
  private func discard(_ path: String) {
    do {
      try FileTree.remove(path)
    } catch {
      log("cannot remove \(path) (Cleanup will retry): \(error)")
    }
  }

  private func save(_ database: Database) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    do {
      try File.writeAtomically(root + "/metadata.json", Array(try encoder.encode(database)))
    } catch {
      throw SnapshotError(.internal, "cannot record the snapshots: \(error)")
    }
  }

  private func usage(of id: UInt64) throws -> SnapshotUsage {
    let (size, inodes) = FileTree.usage(folder(id) + "/fs")
    return SnapshotUsage(size: size, inodes: inodes)
  }

  private static func record(_ key: String, in database: Database, what: String = "snapshot") throws -> Record {
    guard let record = database.snapshots[key] else { throw SnapshotError(.notFound, "\(what) \(key) does not exist") }
    return record
  }

  /// A new snapshot `name` on `parent`: the name must be free (AlreadyExists), the parent, if any, committed.
  private static func checkNew(_ name: String, parent: String, in database: Database, what: String) throws {
    guard database.snapshots[name] == nil else { throw SnapshotError(.alreadyExists, "\(what) \(name) already exists") }
    guard !parent.isEmpty else { return }
    guard try record(parent, in: database, what: "parent").info.kind == .committed else {
      throw SnapshotError(.invalidArgument, "parent \(parent) is not a committed snapshot")
    }
  }

  /// containerd's limit: a label's key and value together at most 4096 bytes.
  private static func check(_ labels: [String: String]) throws {
    for (key, value) in labels where key.utf8.count + value.utf8.count > 4096 {
      throw SnapshotError(.invalidArgument, "label \(key) is longer than 4096 bytes with its value")
    }
  }
}
