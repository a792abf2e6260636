import CClipShims
import ClipCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The mount table of this process's mount namespace and the file-system chores around it.
enum HostMounts {
  /// Whether a mountpoint serves, is dead (its FUSE daemon gone: "transport endpoint is not connected"), or is not a
  /// mountpoint at all.
  enum Status: Equatable {
    case absent, live, dead
  }

  /// The mountpoints of /proc/self/mountinfo, decoded (for kernels whose statx does not tell a mount root).
  static func mountpoints() -> [String] {
    guard let bytes = try? File.readAll("/proc/self/mountinfo") else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
      let fields = line.split(separator: " ", omittingEmptySubsequences: false)
      return fields.count > 4 ? unescape(fields[4]) : nil
    }
  }

  /// The status of the mount at `path` (an absolute path without symlinks).
  static func status(_ path: String) -> Status {
    switch clip_mount_root(path) {
    case 1: return .live
    case -ENOTCONN: return .dead
    case -ENOSYS:
      guard mountpoints().contains(path) else { return .absent }
      var attributes = stat()
      return stat(path, &attributes) != 0 && errno == ENOTCONN ? .dead : .live
    default: return .absent
    }
  }

  /// Whether `path` (an absolute path without symlinks) is a mountpoint, live or dead.
  static func isMountpoint(_ path: String) -> Bool { status(path) != .absent }

  /// Unmounts `path` if it is a mountpoint; a busy one (or one whose daemon is gone) is detached.
  static func unmount(_ path: String) throws {
    while isMountpoint(path) {
      if umount2(path, 0) == 0 { continue }
      let code = errno
      guard code == EBUSY || code == ENOTCONN else { throw ClipError.system("umount", path, errno: code) }
      guard umount2(path, Int32(MNT_DETACH)) == 0 else { throw ClipError.system("umount", path) }
    }
  }

  /// The start time of process `pid` in clock ticks since boot (field 22 of /proc/PID/stat), nil if it is gone or a
  /// zombie: with the pid, it names one process for good.
  static func startTime(of pid: Int32) -> UInt64? {
    guard pid > 0, let bytes = try? File.readAll("/proc/\(pid)/stat") else { return nil }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // fields[0] is field 3 (the state); field 22 is fields[19].
    guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
    return UInt64(fields[19])
  }

  private static func unescape(_ field: Substring) -> String {
    var bytes: [UInt8] = []
    var utf8 = Array(field.utf8)[...]
    while let byte = utf8.popFirst() {
      if byte == UInt8(ascii: "\\"), utf8.count >= 3,
        let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
      {
        bytes.append(value)
        utf8 = utf8.dropFirst(3)
      } else {
        bytes.append(byte)
      }
    }
    return String(decoding: bytes, as: UTF8.self)
  }
}

/// An exclusive advisory lock on a file (flock), held until `unlock` or the process ends.
final class FileLock {
  private let fd: Int32

  /// Opens (creating) `path` and waits for the lock.
  init(_ path: String) throws {
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw ClipError.system("open", path) }
    while flock(fd, LOCK_EX) != 0 {
      guard errno == EINTR else {
        let error = ClipError.system("flock", path)
        close(fd)
        throw error
      }
    }
  }

  /// Releases the lock.
  func unlock() { close(fd) }

  /// Runs `body` holding the lock at `path`.
  static func holding<T>(_ path: String, _ body: () throws -> T) throws -> T {
    let lock = try FileLock(path)
    defer { lock.unlock() }
    return try body()
  }
}
