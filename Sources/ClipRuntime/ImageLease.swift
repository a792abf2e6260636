import ClipCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The image mount daemon's side of sharing: it watches the containers using its image and releases the mount once
/// none runs any more and the keep-warm time has passed.
///
/// This is what ends a daemon's life, rather than the poststop hook alone, because some runtimes wait for every
/// process descended from them before they run poststop: `crun run` reaps until no child is left, and a daemon a
/// hook started is adopted by it. For the same reason a daemon adopted by such a runtime does not linger past its
/// last container (`runtimesWaitingForDescendants`).
public struct ImageLease: Sendable {
  private let layout: RuntimeLayout
  private let key: String
  private let keepWarm: Int
  private let log: @Sendable (String) -> Void

  /// Runtimes (process names) known to wait for all their descendants before they go on.
  public static let runtimesWaitingForDescendants: Set<String> = ["crun"]

  /// A lease on the image with manifest digest hex `key` under `root`.
  public init(root: String, key: String, keepWarm: Int, log: @escaping @Sendable (String) -> Void) throws {
    layout = try RuntimeLayout(root: root)
    self.key = key
    self.keepWarm = keepWarm
    self.log = log
  }

  /// Watches (on the calling thread) until the image is to be released, then unmounts it (under the state lock, so no
  /// container starts using it meanwhile) and returns; the caller should then exit. An overlayfs of a finished
  /// container may still hold the file system (overlayfs keeps private clones of its lower mounts), so the kernel
  /// need not end the FUSE session: exiting aborts the connection.
  public func waitForRelease(poll interval: useconds_t = 200_000) {
    var idleSince: Date?
    while true {
      usleep(interval)
      guard HostMounts.status(layout.imageRoot(key)) == .live else {
        log("the mount went away")
        return
      }
      if liveUsers().isEmpty {
        let since = idleSince ?? Date()
        idleSince = since
        let linger = Self.adoptedByWaitingRuntime() ? 0 : Double(keepWarm)
        guard Date().timeIntervalSince(since) >= linger else { continue }
        if (try? FileLock.holding(layout.stateLock, { releaseLocked() })) == true { return }
      } else {
        idleSince = nil
      }
    }
  }

  /// Under the state lock: if still unused, unmounts (or detaches) the image. Returns false if it is in use again.
  private func releaseLocked() -> Bool {
    guard liveUsers().isEmpty else { return false }
    let root = layout.imageRoot(key)
    let clean = umount2(root, 0) == 0
    if !clean { _ = umount2(root, Int32(MNT_DETACH)) }
    if SharedImages.users(layout, key).isEmpty { try? FileTree.remove(layout.image(key)) }
    log("released: no container uses the image\(clean ? "" : " (the mount was busy: detached)")")
    return true
  }

  /// Whether this process's parent is a runtime that waits for it.
  private static func adoptedByWaitingRuntime() -> Bool {
    guard let name = try? File.readAll("/proc/\(getppid())/comm") else { return false }
    let text = String(decoding: name, as: UTF8.self).trimmingASCIIWhitespace
    return runtimesWaitingForDescendants.contains(text)
  }

  /// Users whose container still runs.
  private func liveUsers() -> [String] {
    SharedImages.users(layout, key).filter { id in
      guard let record = ContainerRecord.load(layout, id: id), let started = record.startTime else {
        // A container being set up has a record before it is a user; one without is not running.
        return false
      }
      return HostMounts.startTime(of: record.pid) == started
    }
  }
}
