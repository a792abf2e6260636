import ClipCore
import ClipOCI
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Gives containers their image as root filesystem and takes it back: the work of `clip hook` and `clip gc`.
///
/// Creating a root: the image's shared FUSE mount (made if needed), an overlayfs over it with the container's upper
/// and work folders (unless the root is read-only), and then, inside the container's mount namespace, each top-level
/// entry of that tree except proc, sys and dev placed under the bundle's (empty) rootfs folder, top-level symlinks
/// recreated as symlinks. The runtime's own /proc, /sys, /dev and bind mounts stay where it put them, and nothing is
/// mounted over the root path itself (specs/hook.md).
public struct ContainerRoots: Sendable {
  /// Top-level names the runtime owns.
  public static let runtimeNames: Set<String> = ["proc", "sys", "dev"]

  private let settings: HookSettings
  private let actions: HookActions
  private let images: SharedImages
  private let log: @Sendable (String) -> Void

  /// Creates the service.
  public init(settings: HookSettings, actions: HookActions, log: @escaping @Sendable (String) -> Void) {
    self.settings = settings
    self.actions = actions
    self.images = SharedImages(settings: settings, actions: actions, log: log)
    self.log = log
  }

  private var layout: RuntimeLayout { settings.layout }

  /// Sets up the root filesystem of the container described by `state` and its bundle's `config`. Returns false
  /// (doing nothing) when the annotations name no image. On failure, undoes everything it did.
  @discardableResult
  public func create(state: RuntimeState, config: RuntimeConfig) throws -> Bool {
    let id = state.id
    try RuntimeLayout.validate(containerID: id)
    let annotations = (config.annotations ?? [:]).merging(state.annotations ?? [:]) { $1 }
    guard let request = try ImageRequest(annotations: annotations) else {
      log("container \(id): no \(Annotation.image) annotation, nothing to do")
      return false
    }
    guard let pid = state.pid, pid > 0 else {
      throw ClipError(
        .invalidArgument, "the runtime gave no container pid (run clip as a createRuntime or prestart hook)")
    }
    let rootfs = try config.rootPath(bundle: state.bundle)
    let readonly = config.root?.readonly ?? false
    let started = Date()
    let (key, index) = try images.prepareIndex(request)
    let indexed = Date()

    var record = ContainerRecord(
      id: id, pid: pid, startTime: HostMounts.startTime(of: pid), rootfs: rootfs,
      keepWarm: request.keepWarm ?? settings.keepWarm)
    let imageRoot = try FileLock.holding(layout.stateLock) {
      if FileManager.default.fileExists(atPath: layout.container(id)) {
        log("container \(id): removing what an earlier container of that id left")
        try teardownLocked(id)
      }
      try FileManager.default.createDirectory(atPath: layout.container(id), withIntermediateDirectories: true)
      try record.save(layout)
      let root = try images.acquire(
        key: key, index: index, request: request, container: id, keepWarm: record.keepWarm,
        command: config.process?.args?.first)
      record.image = key
      try record.save(layout)
      return root
    }
    let mounted = Date()
    do {
      try place(imageRoot: imageRoot, record: &record, readonly: readonly)
    } catch {
      log("container \(id): \(error); undoing")
      try? teardown(id)
      throw error
    }
    let milliseconds = { (from: Date, to: Date) in Int(to.timeIntervalSince(from) * 1000) }
    let now = Date()
    log(
      "container \(id): root filesystem ready in \(milliseconds(started, now)) ms (index \(milliseconds(started, indexed)) ms, "
        + "image mount \(milliseconds(indexed, mounted)) ms, overlay and attach \(milliseconds(mounted, now)) ms; "
        + "image \(key.prefix(12)), rootfs \(rootfs))")
    return true
  }

  private func place(imageRoot: String, record: inout ContainerRecord, readonly: Bool) throws {
    var tree = imageRoot
    if !readonly {
      let folder = layout.container(record.id)
      for part in ["upper", "work", "merged"] {
        try FileManager.default.createDirectory(atPath: "\(folder)/\(part)", withIntermediateDirectories: true)
      }
      let options = "lowerdir=\(imageRoot),upperdir=\(folder)/upper,workdir=\(folder)/work"
      // The upper layer goes with the container, so its writes need no syncing: `volatile` (Linux 5.10 and later)
      // spares the upper filesystem a sync at every fsync in the container and at the unmount.
      guard
        mount("overlay", "\(folder)/merged", "overlay", 0, options + ",volatile") == 0
          || (errno == EINVAL && mount("overlay", "\(folder)/merged", "overlay", 0, options) == 0)
      else {
        throw ClipError.system("mount overlay", "\(folder)/merged")
      }
      tree = "\(folder)/merged"
    }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: record.rootfs, isDirectory: &isDirectory), isDirectory.boolValue else {
      throw ClipError(.notFound, "the bundle's root filesystem \(record.rootfs) is not a directory")
    }
    // What the tree has at its top (outside the lock: this reads through FUSE).
    var top: [(name: String, mode: mode_t, link: String?)] = []
    let names = try ClipError.inContext(imageRoot) { try FileManager.default.contentsOfDirectory(atPath: tree) }
    for name in names.sorted() where !Self.runtimeNames.contains(name) {
      let source = "\(tree)/\(name)"
      var attributes = stat()
      guard lstat(source, &attributes) == 0 else { throw ClipError.system("stat", source) }
      let type = attributes.st_mode & S_IFMT
      top.append(
        (name, type, type == S_IFLNK ? try FileManager.default.destinationOfSymbolicLink(atPath: source) : nil))
    }
    // The mountpoints, under the state lock: containers of one bundle create them once, and a name another container
    // created and hands over (teardown) must reach the record this one saves.
    var entries: [AttachRequest.Entry] = []
    record = try updateRecord(record) { current in
      for (name, type, link) in top {
        let target = "\(current.rootfs)/\(name)"
        var existing = stat()
        let exists = lstat(target, &existing) == 0
        if let link {
          if exists { continue }
          guard symlink(link, target) == 0 else { throw ClipError.system("symlink", target) }
          current.created.append(name)
          continue
        }
        if !exists {
          if type == S_IFDIR {
            guard mkdir(target, 0o755) == 0 else { throw ClipError.system("mkdir", target) }
          } else {
            let fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw ClipError.system("create", target) }
            close(fd)
          }
          current.created.append(name)
        }
        entries.append(.init(name: name, source: "\(tree)/\(name)"))
      }
    }
    try actions.attach(AttachRequest(pid: record.pid, rootfs: record.rootfs, entries: entries, readonly: readonly))
  }

  /// Changes a container's record under the state lock, starting from what is on disk (teardowns of other containers
  /// may have handed it names), and returns the record saved.
  private func updateRecord(_ record: ContainerRecord, _ change: (inout ContainerRecord) throws -> Void) throws
    -> ContainerRecord
  {
    try FileLock.holding(layout.stateLock) {
      var current = ContainerRecord.load(layout, id: record.id) ?? record
      do {
        try change(&current)
      } catch {
        try? current.save(layout)  // keep what was created before the failure, for the teardown
        throw error
      }
      try current.save(layout)
      return current
    }
  }

  /// The index file of the image `request` names: the annotation's, a cached one, a published one, or one made now
  /// (kept in the index cache for next time).
  public func index(for request: ImageRequest) throws -> String { try images.prepareIndex(request).index }

  /// Removes what the hook did for container `id` (poststop); nothing to do is fine.
  public func teardown(_ id: String) throws {
    try RuntimeLayout.validate(containerID: id)
    try FileLock.holding(layout.stateLock) { try teardownLocked(id) }
  }

  private func teardownLocked(_ id: String) throws {
    let folder = layout.container(id)
    guard FileManager.default.fileExists(atPath: folder) else { return }
    var problems: [String] = []
    let record = ContainerRecord.load(layout, id: id)
    // Containers may share a bundle (runc runs one bundle under several ids): the names created under its rootfs
    // then pass to another container still using it, since removing a folder there would also take the mounts on
    // it away from that container.
    if let record, var heir = records().first(where: { $0.id != id && $0.rootfs == record.rootfs }) {
      heir.created += record.created.filter { !heir.created.contains($0) }
      try heir.save(layout)
    } else if let record {
      for name in record.created.reversed() {
        let path = "\(record.rootfs)/\(name)"
        var attributes = stat()
        guard lstat(path, &attributes) == 0 else { continue }
        let removed = attributes.st_mode & S_IFMT == S_IFDIR ? rmdir(path) : unlink(path)
        if removed != 0 { problems.append("\(ClipError.system("remove", path))") }
      }
    }
    do {
      try HostMounts.unmount("\(folder)/merged")
      try FileTree.remove(folder)
    } catch {
      problems.append("\(error)")
    }
    if let key = record?.image {
      do {
        try images.release(key: key, container: id, keepWarm: record?.keepWarm ?? settings.keepWarm)
      } catch {
        problems.append("\(error)")
      }
    }
    guard problems.isEmpty else {
      throw ClipError(.system, "container \(id): cleanup incomplete: " + problems.joined(separator: "; "))
    }
    log("container \(id): cleaned up")
  }

  /// The records of every container the hook set up.
  private func records() -> [ContainerRecord] {
    let ids = (try? FileManager.default.contentsOfDirectory(atPath: layout.containers)) ?? []
    return ids.sorted().compactMap { ContainerRecord.load(layout, id: $0) }
  }

  /// Removes what containers that no longer run left behind, and unmounts dead image mounts (their daemon killed) and,
  /// with `force`, every image no container uses. Returns a line per thing removed.
  public func collectGarbage(force: Bool = false) throws -> [String] {
    try FileLock.holding(layout.stateLock) {
      var removed: [String] = []
      var problems: [String] = []
      let ids = (try? FileManager.default.contentsOfDirectory(atPath: layout.containers)) ?? []
      for id in ids.sorted() {
        if let record = ContainerRecord.load(layout, id: id), let started = record.startTime,
          HostMounts.startTime(of: record.pid) == started
        {
          continue
        }
        do {
          try teardownLocked(id)
          removed.append("container \(id)")
        } catch {
          problems.append("\(error)")
        }
      }
      let keys = (try? FileManager.default.contentsOfDirectory(atPath: layout.images)) ?? []
      for key in keys.sorted() {
        for user in images.users(key) where !FileManager.default.fileExists(atPath: layout.container(user)) {
          unlink("\(layout.users(key))/\(user)")
        }
        guard images.users(key).isEmpty, force || images.isDead(key) else { continue }
        do {
          try images.unmount(key: key)
          removed.append("image \(key.prefix(12))")
        } catch {
          problems.append("\(error)")
        }
      }
      guard problems.isEmpty else {
        throw ClipError(.system, "gc incomplete: " + problems.joined(separator: "; "))
      }
      return removed
    }
  }
}
