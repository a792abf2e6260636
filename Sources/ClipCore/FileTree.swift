#if canImport(Glibc)
  import Glibc
#endif

/// Whole directory trees, walked by descriptor so that names need not be UTF-8 and no walk leaves the file system it
/// started on.
public enum FileTree {
  /// Removes `path` and everything below it without crossing into another file system (a mount left below is
  /// reported, never emptied). A missing path is fine.
  public static func remove(_ path: String) throws {
    var top = stat()
    guard lstat(path, &top) == 0 else {
      if errno == ENOENT { return }
      throw ClipError.system("stat", path)
    }
    guard top.st_mode & S_IFMT == S_IFDIR else {
      guard unlink(path) == 0 || errno == ENOENT else { throw ClipError.system("unlink", path) }
      return
    }
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { throw ClipError.system("open", path) }
    try removeContents(fd, device: top.st_dev, path: path)
    guard rmdir(path) == 0 || errno == ENOENT else { throw ClipError.system("rmdir", path) }
  }

  /// Bytes (regular files and symlinks, each inode once) and inodes below `path`, on its file system.
  public static func usage(_ path: String) -> (size: Int64, inodes: Int64) {
    var top = stat()
    guard lstat(path, &top) == 0 else { return (0, 0) }
    var seen = Set<[UInt64]>()
    var size: Int64 = 0
    seen.insert([UInt64(top.st_dev), UInt64(top.st_ino)])
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    if fd >= 0 {
      walk(fd, device: top.st_dev) { attributes in
        guard seen.insert([UInt64(attributes.st_dev), UInt64(attributes.st_ino)]).inserted else { return }
        let type = attributes.st_mode & S_IFMT
        if type == S_IFREG || type == S_IFLNK { size += Int64(attributes.st_size) }
      }
    }
    return (size, Int64(seen.count))
  }

  /// Calls `body` for every entry below the directory `fd` (closed here), children first.
  private static func walk(_ fd: Int32, device: dev_t, _ body: (stat) -> Void) {
    guard let directory = fdopendir(fd) else {
      close(fd)
      return
    }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
      var name = entry.pointee.d_name
      let isDot = withUnsafeBytes(of: &name) { $0[0] == 0x2e && ($0[1] == 0 || ($0[1] == 0x2e && $0[2] == 0)) }
      if isDot { continue }
      withUnsafePointer(to: &name) { pointer in
        pointer.withMemoryRebound(to: CChar.self, capacity: 256) { child in
          var attributes = stat()
          guard fstatat(dirfd(directory), child, &attributes, AT_SYMLINK_NOFOLLOW) == 0 else { return }
          if attributes.st_mode & S_IFMT == S_IFDIR && attributes.st_dev == device {
            let sub = openat(dirfd(directory), child, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if sub >= 0 { walk(sub, device: device, body) }
          }
          body(attributes)
        }
      }
    }
  }

  private static func removeContents(_ fd: Int32, device: dev_t, path: String) throws {
    guard let directory = fdopendir(fd) else {
      close(fd)
      throw ClipError.system("opendir", path)
    }
    defer { closedir(directory) }
    while let entry = readdir(directory) {
      var name = entry.pointee.d_name
      let isDot = withUnsafeBytes(of: &name) { $0[0] == 0x2e && ($0[1] == 0 || ($0[1] == 0x2e && $0[2] == 0)) }
      if isDot { continue }
      try withUnsafePointer(to: &name) { pointer in
        try pointer.withMemoryRebound(to: CChar.self, capacity: 256) { child in
          var attributes = stat()
          guard fstatat(dirfd(directory), child, &attributes, AT_SYMLINK_NOFOLLOW) == 0 else { return }
          let childPath =
            path + "/" + String(decoding: UnsafeRawBufferPointer(start: child, count: strlen(child)), as: UTF8.self)
          guard attributes.st_dev == device else {
            throw ClipError(.system, "\(childPath) is a mountpoint: not removed")
          }
          if attributes.st_mode & S_IFMT == S_IFDIR {
            let sub = openat(dirfd(directory), child, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard sub >= 0 else { throw ClipError.system("open", childPath) }
            try removeContents(sub, device: device, path: childPath)
            guard unlinkat(dirfd(directory), child, AT_REMOVEDIR) == 0 || errno == ENOENT else {
              throw ClipError.system("rmdir", childPath)
            }
          } else {
            guard unlinkat(dirfd(directory), child, 0) == 0 || errno == ENOENT else {
              throw ClipError.system("unlink", childPath)
            }
          }
        }
      }
    }
  }
}
