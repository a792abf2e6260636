import CClipShims
import ClipArchive
import ClipCore
import ClipIndex
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Writes an image's merged root filesystem to a directory, reading every file through the random-access path.
///
/// The tree is built in a sibling directory and renamed into place at the end, so a failure leaves nothing behind.
/// As root it restores owners, devices and every extended attribute; otherwise it skips what needs privilege.
public struct Extractor {
  /// The reader the contents come from.
  public let reader: ImageReader

  /// Creates an extractor.
  public init(reader: ImageReader) { self.reader = reader }

  /// Extracts into `directory`, which must not exist or be empty.
  public func extract(to directory: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
      let contents = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? ["?"]
      guard isDirectory.boolValue, contents.isEmpty else {
        throw ClipError(.invalidArgument, "\(directory) exists and is not an empty directory")
      }
    }
    let staging = directory + ".clip-partial-\(getpid())"
    guard mkdir(staging, 0o700) == 0 else { throw ClipError.system("mkdir", staging) }
    do {
      try build(in: staging)
      guard rename(staging, directory) == 0 else { throw ClipError.system("rename", directory) }
    } catch {
      try? FileManager.default.removeItem(atPath: staging)
      throw error
    }
  }

  private func build(in root: String) throws {
    let tree = reader.tree
    let privileged = geteuid() == 0
    var paths = [[UInt8]](repeating: [], count: tree.nodes.count)
    paths[0] = Array(root.utf8)
    var created = [Bool](repeating: false, count: tree.inodes.count)
    var files: [Int32] = []  // nodes of regular files, written in layer order below

    for index in 1..<tree.nodes.count {
      let node = tree.nodes[index]
      let path = paths[Int(node.parent)] + [UInt8(ascii: "/")] + node.name
      paths[index] = path
      let inode = tree.inodes[Int(node.inode)]
      try withCString(path) { cPath in
        if created[Int(node.inode)] {  // a second name of a file made already
          let first = paths[Int(tree.primaryNode[Int(node.inode)])]
          try withCString(first) { guard link($0, cPath) == 0 else { throw ClipError.system("link", describe(path)) } }
          return
        }
        created[Int(node.inode)] = true
        switch inode.kind {
        case .directory:
          guard mkdir(cPath, 0o700) == 0 else { throw ClipError.system("mkdir", describe(path)) }
        case .regular:
          let fd = open(cPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
          guard fd >= 0 else { throw ClipError.system("create", describe(path)) }
          close(fd)
          if inode.size > 0 { files.append(Int32(index)) }
        case .symlink:
          let target = tree.entry(of: node.inode)?.linkTarget ?? []
          try withCString(target) {
            guard symlink($0, cPath) == 0 else { throw ClipError.system("symlink", describe(path)) }
          }
        case .characterDevice, .blockDevice:
          let entry = tree.entry(of: node.inode)
          let type = inode.kind == .characterDevice ? S_IFCHR : S_IFBLK
          let device = clip_makedev(entry?.deviceMajor ?? 0, entry?.deviceMinor ?? 0)
          if privileged {
            guard mknod(cPath, type | 0o600, device) == 0 else { throw ClipError.system("mknod", describe(path)) }
          } else {
            let fd = open(cPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)  // placeholder without privilege
            if fd >= 0 { close(fd) }
          }
        case .fifo:
          guard mkfifo(cPath, 0o600) == 0 else { throw ClipError.system("mkfifo", describe(path)) }
        case .hardlink:
          throw ClipError(.corrupt, "unresolved hard link \(describe(path))")
        }
      }
    }

    // Contents, in the order they sit in the layers, so each span is decoded once.
    files.sort { a, b in
      let x = tree.entry(of: tree.nodes[Int(a)].inode)
      let y = tree.entry(of: tree.nodes[Int(b)].inode)
      let (lx, ly) = (
        tree.inodes[Int(tree.nodes[Int(a)].inode)].layer, tree.inodes[Int(tree.nodes[Int(b)].inode)].layer
      )
      return lx != ly ? lx < ly : (x?.dataOffset ?? 0) < (y?.dataOffset ?? 0)
    }
    for index in files {
      let path = paths[Int(index)]
      let fd = try withCString(path) { open($0, O_WRONLY | O_CLOEXEC) }
      guard fd >= 0 else { throw ClipError.system("open", describe(path)) }
      let file = File(adopting: fd, path: describe(path))
      try ClipError.inContext("file /\(describeRelative(path, root: root))") {
        try reader.read(inode: tree.nodes[Int(index)].inode) { piece in
          try piece.withUnsafeBytes { try file.write($0) }
        }
      }
    }

    // Metadata: files first, then directories bottom-up (creating entries changes a directory's mtime).
    var done = [Bool](repeating: false, count: tree.inodes.count)
    for index in (0..<tree.nodes.count).reversed() {
      let node = tree.nodes[index]
      guard !done[Int(node.inode)] else { continue }
      done[Int(node.inode)] = true
      try applyMetadata(node.inode, path: paths[index], privileged: privileged)
    }
  }

  private func applyMetadata(_ inodeNumber: Int32, path: [UInt8], privileged: Bool) throws {
    let tree = reader.tree
    let inode = tree.inodes[Int(inodeNumber)]
    let entry = tree.entry(of: inodeNumber)
    try withCString(path) { cPath in
      if privileged {
        guard lchown(cPath, inode.uid, inode.gid) == 0 else { throw ClipError.system("chown", describe(path)) }
      }
      if inode.kind != .symlink {
        guard chmod(cPath, mode_t(inode.mode)) == 0 else { throw ClipError.system("chmod", describe(path)) }
      }
      for xattr in entry?.xattrs ?? [] {
        let result = xattr.value.withUnsafeBytes { lsetxattr(cPath, xattr.name, $0.baseAddress, $0.count, 0) }
        guard result == 0 else { throw ClipError.system("setxattr \(xattr.name)", describe(path)) }
      }
      var times = [
        timespec(tv_sec: Int(inode.mtime), tv_nsec: Int(inode.mtimeNanoseconds)),
        timespec(tv_sec: Int(inode.mtime), tv_nsec: Int(inode.mtimeNanoseconds)),
      ]
      guard utimensat(AT_FDCWD, cPath, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
        throw ClipError.system("utimensat", describe(path))
      }
    }
  }

  private func describe(_ path: [UInt8]) -> String { String(decoding: path, as: UTF8.self) }
  private func describeRelative(_ path: [UInt8], root: String) -> String {
    String(decoding: path.dropFirst(root.utf8.count + 1), as: UTF8.self)
  }
}

/// Calls `body` with a NUL-terminated copy of raw path bytes (which need not be UTF-8).
func withCString<T>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) throws -> T) throws -> T {
  var terminated = path
  terminated.append(0)
  return try terminated.withUnsafeBytes { raw in
    guard let base = raw.baseAddress else { throw ClipError(.invalidArgument, "empty path") }
    return try body(base.assumingMemoryBound(to: CChar.self))
  }
}
