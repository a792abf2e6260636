import ClipCore
import Foundation

/// Where the hook keeps its state under one root directory (default /var/lib/clip; specs/hook.md):
///
///     cache/                   span cache shared by every mount
///     layers/                  layer indexes, keyed by layer digest
///     indexes/KEY.clip         image indexes, keyed by manifest digest (KEY = its hex)
///     references/HASH          the KEY a reference (and platform) resolved to, then both (HASH: FNV-1a, 64 bits)
///     images/KEY/root          the image's shared read-only FUSE mount
///     images/KEY/users/ID      one file per container using it
///     images/KEY/idle          touched when its last container went
///     containers/ID/           record.json, and upper/ work/ merged/ of the container's overlayfs
///     state.lock               serialises changes to images/ and containers/
///     hook.log                 what the hook did
public struct RuntimeLayout: Sendable {
  /// The root, absolute and without symlinks (mountpoints are looked at by path).
  public let root: String

  /// Uses `root`, creating it and its folders.
  public init(root: String) throws {
    try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    guard let resolved = realpath(root, nil) else { throw ClipError.system("realpath", root) }
    self.root = String(cString: resolved)
    free(resolved)
    for folder in [cache, layers, indexes, references, images, containers] {
      try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }
  }

  /// The span cache.
  public var cache: String { root + "/cache" }
  /// Layer indexes.
  public var layers: String { root + "/layers" }
  /// Image indexes.
  public var indexes: String { root + "/indexes" }
  /// What references resolved to.
  public var references: String { root + "/references" }
  /// The file recording what `name` (a reference and platform) resolved to: named by the 64-bit FNV-1a hash of
  /// `name` in hex (a start does not load libcrypto for it); the file holds the key, a newline, and `name`, which a
  /// reader compares.
  public func reference(_ name: String) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let hex = String(hash, radix: 16)
    return references + "/" + String(repeating: "0", count: 16 - hex.count) + hex
  }
  /// Shared image mounts.
  public var images: String { root + "/images" }
  /// Per-container state.
  public var containers: String { root + "/containers" }
  /// The lock over images/ and containers/.
  public var stateLock: String { root + "/state.lock" }
  /// The hook's log.
  public var log: String { root + "/hook.log" }

  /// The index file of the image with manifest digest `key`.
  public func index(_ key: String) -> String { "\(indexes)/\(key).clip" }
  /// The prefetch profile published with an image's index, kept beside it.
  public func profile(_ key: String) -> String { Self.profile(besideIndex: index(key)) }
  /// The place of the prefetch profile that goes with an index file: `INDEX.profile`.
  public static func profile(besideIndex index: String) -> String { index + ".profile" }

  /// The `clip mount --prefetch` policy for a request's (`org.clip.prefetch`): `auto` is the profile beside the index
  /// file, if there is one, else `none`; others stay as they are.
  public static func prefetch(_ policy: String, index: String) -> String {
    guard policy == "auto" else { return policy }
    let profile = profile(besideIndex: index)
    return FileManager.default.fileExists(atPath: profile) ? profile : "none"
  }
  /// The folder of a shared image mount.
  public func image(_ key: String) -> String { "\(images)/\(key)" }
  /// The mountpoint of a shared image mount.
  public func imageRoot(_ key: String) -> String { "\(images)/\(key)/root" }
  /// The users of a shared image mount.
  public func users(_ key: String) -> String { "\(images)/\(key)/users" }
  /// A container's folder.
  public func container(_ id: String) -> String { "\(containers)/\(id)" }
  /// A container's record.
  public func record(_ id: String) -> String { "\(containers)/\(id)/record.json" }

  /// Checks that a container ID can name a folder (the runtime-spec only says it is unique).
  public static func validate(containerID id: String) throws {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-+")
    guard !id.isEmpty, id.count <= 200, id != ".", id != "..", id.allSatisfy(allowed.contains) else {
      throw ClipError(.invalidArgument, "container id '\(id)' cannot name a folder")
    }
  }
}

/// What the hook did for one container, so that poststop (or `clip gc`) can undo exactly that.
struct ContainerRecord: Codable, Sendable {
  /// The container ID.
  var id: String
  /// The container's init process and its start time: together they tell whether the container still runs.
  var pid: Int32
  var startTime: UInt64?
  /// The root filesystem folder of the bundle.
  var rootfs: String
  /// The image mount the container uses (manifest digest hex).
  var image: String?
  /// Names the hook created directly under rootfs (mountpoints and symlinks).
  var created: [String] = []
  /// Seconds the image stays mounted once its last container goes.
  var keepWarm: Int

  /// The record as JSON (written and read with `JSONValue`, not Codable: this is on a container's start path).
  var json: JSONValue {
    var members: [String: JSONValue] = [
      "id": .string(id), "pid": .number(Double(pid)), "rootfs": .string(rootfs),
      "created": .array(created.map { .string($0) }), "keepWarm": .number(Double(keepWarm)),
    ]
    if let startTime { members["startTime"] = .number(Double(startTime)) }
    if let image { members["image"] = .string(image) }
    return .object(members)
  }

  /// Replaces the record atomically, without waiting for the disk: a record only has to outlive a crash of the hook
  /// or the runtime (the page cache does), not of the host, which takes the container's mounts with it; an fsync per
  /// save cost each container start three journal commits, long ones on a busy disk. A record lost with the host
  /// leaves `gc` only the mountpoints the hook made under the bundle's rootfs.
  func save(_ layout: RuntimeLayout) throws {
    try File.writeAtomically(layout.record(id), Array(json.text.utf8), sync: false)
  }

  static func load(_ layout: RuntimeLayout, id: String) -> ContainerRecord? {
    guard let bytes = try? File.readAll(layout.record(id)), let json = try? JSONValue(parsing: bytes) else {
      return nil
    }
    return ContainerRecord(json: json)
  }
}

extension ContainerRecord {
  /// The record in `json`, or nil if it is not one.
  init?(json: JSONValue) {
    guard let id = json["id"]?.string, let pid = json["pid"]?.integer(Int32.self), let rootfs = json["rootfs"]?.string,
      let keepWarm = json["keepWarm"]?.integer(Int.self)
    else { return nil }
    self.init(
      id: id, pid: pid, startTime: json["startTime"]?.integer(UInt64.self), rootfs: rootfs,
      image: json["image"]?.string,
      created: json["created"]?.array?.compactMap(\.string) ?? [], keepWarm: keepWarm)
  }
}
