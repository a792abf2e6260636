import ClipCore
import ClipOCI

/// A request to serve an image index through FUSE at a mountpoint, as a detached daemon.
public struct MountRequest: Sendable, Equatable {
  /// The image index file.
  public var index: String
  /// The mountpoint (an existing empty directory).
  public var mountpoint: String
  /// Where the blobs come from.
  public var source: String
  /// Plain HTTP to the registry.
  public var plainHTTP: Bool
  /// Registry credentials (a Docker config.json).
  public var authFile: String?
  /// `none`, `all` or a profile path.
  public var prefetch: String
  /// The span cache folder.
  public var cache: String
  /// The span cache's size limit, as `clip mount --cache-size` takes it.
  public var cacheSize: String
  /// The hook's state root and the image key: the daemon holds an `ImageLease` on them.
  public var stateRoot: String
  public var key: String
  /// Seconds the daemon stays after its last container.
  public var keepWarm: Int
  /// Files to fetch right after mounting (`clip mount --warm`): what the first container will read as it starts.
  public var warm: [String] = []
}

/// A request to make trees of the host appear under a container's root filesystem, inside its mount namespace.
public struct AttachRequest: Sendable, Equatable {
  /// A process in the container's mount namespace (its init).
  public var pid: Int32
  /// The root filesystem path (the same folder in both namespaces).
  public var rootfs: String
  /// `(name under rootfs, host path of the tree to place there)`.
  public var entries: [Entry]
  /// Make the placed trees read-only.
  public var readonly: Bool

  /// One tree to place.
  public struct Entry: Sendable, Equatable {
    /// The name directly under rootfs.
    public var name: String
    /// The host path of the tree.
    public var source: String
  }
}

/// How the hook starts the processes it needs. The executable wires these to `clip mount` and to a fresh,
/// single-threaded copy of itself for the attach step (entering a mount namespace needs a single-threaded process).
public struct HookActions: Sendable {
  /// Starts a detached mount daemon and returns its pid once the mount serves.
  public var startMount: @Sendable (MountRequest) throws -> Int32
  /// Performs an attach in a separate process and returns when it is done.
  public var attach: @Sendable (AttachRequest) throws -> Void

  /// Creates the actions.
  public init(
    startMount: @escaping @Sendable (MountRequest) throws -> Int32,
    attach: @escaping @Sendable (AttachRequest) throws -> Void
  ) {
    self.startMount = startMount
    self.attach = attach
  }
}

/// The hook's own settings (its command-line options), which annotations may refine per container.
public struct HookSettings: Sendable {
  /// The state folders.
  public var layout: RuntimeLayout
  /// The span cache's size limit.
  public var cacheSize: String
  /// Seconds an image stays mounted after its last container, unless the container's annotation says otherwise.
  public var keepWarm: Int

  /// Creates settings.
  public init(layout: RuntimeLayout, cacheSize: String, keepWarm: Int) {
    self.layout = layout
    self.cacheSize = cacheSize
    self.keepWarm = keepWarm
  }
}
