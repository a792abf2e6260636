import CClipShims
import CFuse3
import ClipArchive
import ClipCore
import ClipIndex
import ClipStore
import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// The read-only FUSE filesystem (libfuse3, low-level API) that serves an image's merged tree.
///
/// Metadata comes straight from the immutable tree; file data from the span store, which blocks the FUSE thread
/// while it fetches (libfuse's own threads, never Swift concurrency). The image never changes, so the kernel is told
/// to cache everything: long entry and attribute timeouts, `keep_cache`, cached symlinks and directory listings.
/// Inode numbers are the tree's inode indexes plus one, so hard links share one.
///
/// Where the kernel offers passthrough (6.9 and later), a file of at least `passthroughMinimum` bytes whose data the
/// disk cache holds as one copy is opened with that copy as its backing file: the kernel then reads it (and maps it)
/// without asking us. The copy is made in the background once all of the file's spans are cached
/// (`SpanStore.copyFile`). An inode is never open both ways at once (the kernel refuses that).
///
/// ## Concurrency model
/// libfuse calls the operations from several threads at once. Everything they read is immutable or thread-safe
/// (the tree, the span store); the open counts of passthrough candidates are behind a mutex; the logger serializes
/// itself.
public final class FuseServer: @unchecked Sendable {
  /// The tree served.
  public let tree: MergedTree
  /// Where file data comes from.
  public let store: SpanStore
  /// Where the filesystem is mounted.
  public let mountpoint: String
  /// Where problems are reported (a read that fails names layer and span).
  public let log: @Sendable (String) -> Void
  private var session: OpaquePointer?
  /// The session's userdata: this server, and what the INIT exchange decided about passthrough.
  private let sessionData: UnsafeMutablePointer<clip_fuse_session_data>
  /// Reads ahead the directory of each file opened, if asked to.
  private let directoryReadahead: DirectoryReadahead?
  /// Whether to ask the kernel for passthrough.
  private let wantsPassthrough: Bool
  /// How passthrough candidates are open now, by inode.
  private let openCounts = Mutex<[Int32: Opens]>([:])
  /// Set once the kernel refused a backing file (a cache on a stacked filesystem): no more passthrough, no copies.
  private let passthroughRefused = Atomic<Bool>(false)
  /// Whether the kernel takes ENOSYS from opendir as "no opendir or releasedir needed" (known at init).
  private let opendirOptional = Atomic<Bool>(false)
  /// Whether any inode has an extended attribute. Without any, getxattr answers ENOSYS, which the kernel takes for
  /// "this filesystem has none, never ask again": overlayfs's look at each lower directory and file
  /// (`trusted.overlay.*`) and every exec's `security.capability` then cost no round trip.
  private let servesXattrs: Bool
  private let timeout: Double = 86_400

  /// Creates a server for `tree`, reading file data from `store`; with `passthrough`, large files whose copy the
  /// disk cache holds are read by the kernel (not with a profile being recorded, nor without a disk cache).
  public init(
    tree: MergedTree, store: SpanStore, mountpoint: String, passthrough: Bool = true,
    directoryReadahead: DirectoryReadahead? = nil, log: @escaping @Sendable (String) -> Void
  ) {
    self.tree = tree
    servesXattrs = tree.inodes.indices.contains {
      tree.inodes[$0].opaque || tree.entry(of: Int32($0))?.xattrs.isEmpty == false
    }
    self.directoryReadahead = directoryReadahead
    wantsPassthrough = passthrough && store.disk != nil && !store.recording
    self.store = store
    self.mountpoint = mountpoint
    self.log = log
    sessionData = .allocate(capacity: 1)
    sessionData.initialize(to: clip_fuse_session_data())
    canonicalMountpoint =
      realpath(mountpoint, nil).map { path in
        defer { free(path) }
        return String(cString: path)
      } ?? mountpoint
  }

  deinit { sessionData.deallocate() }

  /// The mountpoint with symlinks resolved, taken before mounting (afterwards, looking at the path would wait for
  /// this very server).
  private let canonicalMountpoint: String

  /// Mounts the filesystem (read-only, `allow_other`, `default_permissions`).
  public func mount(extraOptions: [String] = []) throws {
    if let error = clip_fuse3_load() { throw ClipError(.system, String(cString: error)) }
    let options = (["ro", "allow_other", "default_permissions", "fsname=clip", "subtype=clip"] + extraOptions)
      .joined(separator: ",")
    var ops = fuse_lowlevel_ops()
    ops.`init` = fuseInit
    ops.lookup = fuseLookup
    ops.getattr = fuseGetattr
    ops.readlink = fuseReadlink
    ops.open = fuseOpen
    ops.read = fuseRead
    ops.release = fuseRelease
    ops.opendir = fuseOpendir
    ops.readdir = fuseReaddir
    ops.readdirplus = fuseReaddirplus
    ops.getxattr = fuseGetxattr
    ops.listxattr = fuseListxattr
    ops.statfs = fuseStatfs
    let arguments = ["clip", "-o", options]
    var cArguments = arguments.map { strdup($0) }
    defer { cArguments.forEach { free($0) } }
    sessionData.pointee.server = Unmanaged.passUnretained(self).toOpaque()
    sessionData.pointee.want_passthrough = wantsPassthrough ? 1 : 0
    guard let session = clip_fuse_session_new(Int32(cArguments.count), &cArguments, &ops, sessionData) else {
      throw ClipError(.system, "cannot start a FUSE session (options: \(options))")
    }
    guard fuse_session_mount(session, mountpoint) == 0 else {
      fuse_session_destroy(session)
      throw ClipError(.system, "cannot mount FUSE on \(mountpoint) (is /dev/fuse there, and are we root?)")
    }
    if sessionData.pointee.want_passthrough != 0, clip_fuse_use_passthrough_io(session) != 0 {
      sessionData.pointee.want_passthrough = 0
    }
    self.session = session
    raiseReadahead()
  }

  /// Serves requests until the filesystem is unmounted or SIGINT/SIGTERM arrives; then unmounts.
  public func run(threads: UInt32 = 16) -> Int32 {
    guard let session else { return -1 }
    // libfuse installs its handlers only over the default disposition (a shell may start us with SIGINT ignored).
    signal(SIGINT, SIG_DFL)
    signal(SIGTERM, SIG_DFL)
    signal(SIGHUP, SIG_DFL)
    fuse_set_signal_handlers(session)
    let result = clip_fuse_loop_mt(session, threads)
    fuse_remove_signal_handlers(session)
    fuse_session_unmount(session)
    fuse_session_destroy(session)
    self.session = nil
    return result
  }

  /// The most bytes one read request asks for. libfuse splices a reply only if it fits its pipe together with the
  /// header and a few pages of slack; a pipe grows to `fs.pipe-max-size` (1 MiB by default) unless the process has
  /// CAP_SYS_RESOURCE, so a 1 MiB request falls back to a copy through a fresh buffer. 512 KiB fits with room for a
  /// reply that straddles two cache files.
  static let maxRequest: UInt32 = 512 << 10

  /// The readahead window: two requests in flight, so the reader's copy and ours overlap (wider windows measured
  /// slower on two cores: more requests contend for the same CPUs).
  static let readaheadKiB = 1024

  /// Lets the kernel read ahead `readaheadKiB`. The kernel takes the smaller of the bdi's `read_ahead_kb` and the
  /// `max_readahead` of our INIT reply, which comes later. The device number comes from /proc/self/mountinfo: a stat
  /// of the mountpoint would wait for this very server, which is not serving yet.
  private func raiseReadahead() {
    guard let mounts = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return }
    let canonical = canonicalMountpoint
    for line in mounts.split(separator: "\n").reversed() {
      let fields = line.split(separator: " ")
      guard fields.count > 4, fields[4] == canonical, line.contains("fuse.clip") else { continue }
      let setting = "/sys/class/bdi/\(fields[2])/read_ahead_kb"
      try? "\(Self.readaheadKiB)".write(toFile: setting, atomically: false, encoding: .utf8)
      return
    }
  }

  // MARK: - Attributes

  static func fuseIno(_ inode: Int32) -> fuse_ino_t { fuse_ino_t(inode) + 1 }

  func inode(_ ino: fuse_ino_t) -> Int32? {
    guard ino >= 1, ino <= fuse_ino_t(tree.inodes.count) else { return nil }
    return Int32(ino - 1)
  }

  func attributes(_ number: Int32) -> stat {
    let inode = tree.inodes[Int(number)]
    var st = stat()
    st.st_ino = UInt(Self.fuseIno(number))
    let type: UInt32
    switch inode.kind {
    case .regular, .hardlink: type = 0o100000  // S_IFREG (the constants are ambiguous between Glibc and Foundation)
    case .directory: type = 0o040000  // S_IFDIR
    case .symlink: type = 0o120000  // S_IFLNK
    case .characterDevice: type = 0o020000  // S_IFCHR
    case .blockDevice: type = 0o060000  // S_IFBLK
    case .fifo: type = 0o010000  // S_IFIFO
    }
    st.st_mode = type | inode.mode
    st.st_nlink = UInt(inode.linkCount)
    st.st_uid = inode.uid
    st.st_gid = inode.gid
    st.st_size = Int(inode.size)
    st.st_blksize = 4096
    st.st_blocks = Int((inode.size + 511) / 512)
    let time = timespec(tv_sec: Int(inode.mtime), tv_nsec: Int(inode.mtimeNanoseconds))
    st.st_mtim = time
    st.st_atim = time
    st.st_ctim = time
    if inode.kind == .characterDevice || inode.kind == .blockDevice, let entry = tree.entry(of: number) {
      st.st_rdev = clip_fuse_makedev(entry.deviceMajor, entry.deviceMinor)
    }
    return st
  }

  func entryParam(_ number: Int32) -> fuse_entry_param {
    var entry = fuse_entry_param()
    entry.ino = Self.fuseIno(number)
    entry.generation = 1
    entry.attr = attributes(number)
    entry.attr_timeout = timeout
    entry.entry_timeout = timeout
    return entry
  }

  /// The directory node of a directory inode.
  func directoryNode(_ number: Int32) -> Int32? {
    guard tree.inodes[Int(number)].kind == .directory else { return nil }
    return tree.primaryNode[Int(number)]
  }

  // MARK: - Operations

  func lookup(_ req: fuse_req_t, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>) {
    guard let parentInode = inode(parent), let directory = directoryNode(parentInode) else {
      fuse_reply_err(req, ENOTDIR)
      return
    }
    let bytes = UnsafeRawBufferPointer(start: name, count: strlen(name))
    guard let child = tree.child(of: directory, named: Array(bytes)) else {
      // A negative entry the kernel may cache as long as the positive ones: the image never changes.
      var negative = fuse_entry_param()
      negative.entry_timeout = timeout
      fuse_reply_entry(req, &negative)
      return
    }
    var entry = entryParam(tree.nodes[Int(child)].inode)
    fuse_reply_entry(req, &entry)
  }

  func getattr(_ req: fuse_req_t, _ ino: fuse_ino_t) {
    guard let number = inode(ino) else { return reply(req, ENOENT) }
    var st = attributes(number)
    fuse_reply_attr(req, &st, timeout)
  }

  func readlink(_ req: fuse_req_t, _ ino: fuse_ino_t) {
    guard let number = inode(ino), tree.inodes[Int(number)].kind == .symlink, let entry = tree.entry(of: number) else {
      return reply(req, EINVAL)
    }
    (entry.linkTarget + [0]).withUnsafeBufferPointer { buffer in
      buffer.withMemoryRebound(to: CChar.self) { _ = fuse_reply_readlink(req, $0.baseAddress) }
    }
  }

  func open(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
    guard let number = inode(ino) else { return reply(req, ENOENT) }
    guard tree.inodes[Int(number)].kind != .directory else { return reply(req, EISDIR) }
    guard fi.pointee.flags & O_ACCMODE == O_RDONLY else { return reply(req, EROFS) }
    defer { directoryReadahead?.opened(inode: number) }  // after the reply
    fi.pointee.keep_cache = 1
    fi.pointee.fh = Handle.plain
    guard let (layer, range) = passthroughCandidate(number), let session else {
      fuse_reply_open(req, fi)
      return
    }
    let backing = openCounts.withLock { table -> Int32? in
      var opens = table[number, default: Opens()]
      defer { table[number] = opens }
      if opens.passthrough > 0 {
        opens.passthrough += 1
        return opens.backing
      }
      if opens.cached == 0, let copy = store.fileCopy(layer: layer, range: range) {
        let backing = clip_fuse_backing_open(session, copy.fd)
        if backing > 0 {
          opens.passthrough = 1
          opens.backing = backing
          return backing
        }
        passthroughRefused.store(true, ordering: .relaxed)
        log(
          "kernel passthrough refused (\(String(cString: strerror(errno))), backing file \(copy.path)): serving reads")
      }
      opens.cached += 1
      return nil
    }
    if let backing {
      store.stats.countPassthroughOpen()
      // An opener gone meanwhile (the kernel dropped the request) sends no release: count it closed here.
      if clip_fuse_reply_open_passthrough(req, Handle.passthrough, backing) != 0 { closed(number, Handle.passthrough) }
      return
    }
    fi.pointee.fh = Handle.counted
    if fuse_reply_open(req, fi) != 0 { closed(number, Handle.counted) }
    store.copyFile(layer: layer, range: range)  // if its spans are cached by now: the next open passes through
  }

  /// What an open file's handle says about it.
  enum Handle {
    /// Not a passthrough candidate.
    static let plain: UInt64 = 0
    /// A candidate opened with reads served here (counted in `Opens.cached`).
    static let counted: UInt64 = 1
    /// Opened with kernel passthrough (counted in `Opens.passthrough`).
    static let passthrough: UInt64 = 2
  }

  /// How an inode is open now (as far as we know: the kernel forgets a file before it tells us, never after).
  struct Opens {
    var cached = 0
    var passthrough = 0
    var backing: Int32 = 0
  }

  /// The smallest file served by passthrough: below it the copy is not worth its disk space.
  static let passthroughMinimum: UInt64 = 1 << 20

  /// Layer and tar-stream range of a regular file that may be served by passthrough (large enough, on a
  /// connection that agreed to it), or nil.
  private func passthroughCandidate(_ number: Int32) -> (layer: Int, range: Range<UInt64>)? {
    guard clip_fuse_passthrough_enabled(sessionData) != 0, !passthroughRefused.load(ordering: .relaxed),
      let entry = tree.entry(of: number),
      entry.kind == .regular, entry.size >= Self.passthroughMinimum
    else { return nil }
    return (Int(tree.inodes[Int(number)].layer), entry.dataOffset..<entry.dataOffset + entry.size)
  }

  func release(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
    let handle = fi.pointee.fh
    fuse_reply_err(req, 0)
    guard handle != Handle.plain, let number = inode(ino) else { return }
    closed(number, handle)
    if handle == Handle.counted, let (layer, range) = passthroughCandidate(number) {
      store.copyFile(layer: layer, range: range)  // read whole by now, perhaps
    }
  }

  /// Counts an open of a passthrough candidate closed; the last passthrough one drops the backing id.
  private func closed(_ number: Int32, _ handle: UInt64) {
    guard let session else { return }
    let close = openCounts.withLock { table -> Int32? in
      guard var opens = table[number] else { return nil }
      var close: Int32?
      if handle == Handle.passthrough {
        opens.passthrough -= 1
        if opens.passthrough == 0 { close = opens.backing }
      } else {
        opens.cached -= 1
      }
      table[number] = opens.cached == 0 && opens.passthrough == 0 ? nil : opens
      return close
    }
    if let close { clip_fuse_backing_close(session, close) }
  }

  func read(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t) {
    guard let number = inode(ino), let entry = tree.entry(of: number), entry.kind == .regular else {
      return reply(req, EINVAL)
    }
    let layer = Int(tree.inodes[Int(number)].layer)
    guard offset >= 0, UInt64(offset) < entry.size else {
      fuse_reply_buf(req, nil, 0)
      return
    }
    let count = Int(min(UInt64(size), entry.size - UInt64(offset)))
    do {
      let pieces = try store.read(
        layer: layer, offset: entry.dataOffset + UInt64(offset), count: count,
        sequentialEnd: entry.dataOffset + entry.size)
      if pieces.count == 1, case .file(let file, let at, let length) = pieces[0] {
        _ = clip_fuse_reply_fd(req, file.fd, off_t(at), length)
        return
      }
      if replySpliced(req, pieces) { return }
      let bytes = try SpanStore.gather(pieces)
      bytes.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    } catch {
      log("read of /\(String(decoding: tree.path(of: tree.primaryNode[Int(number)]), as: UTF8.self)) failed: \(error)")
      reply(req, EIO)
    }
  }

  /// Replies with pieces that all lie in cache files, spliced; false (nothing sent) if any piece is in memory.
  private func replySpliced(_ req: fuse_req_t, _ pieces: [SpanStore.Piece]) -> Bool {
    withUnsafeTemporaryAllocation(of: Int32.self, capacity: pieces.count) { fds in
      withUnsafeTemporaryAllocation(of: off_t.self, capacity: pieces.count) { offsets in
        withUnsafeTemporaryAllocation(of: Int.self, capacity: pieces.count) { sizes in
          for (i, piece) in pieces.enumerated() {
            guard case .file(let file, let at, let length) = piece else { return false }
            fds[i] = file.fd
            offsets[i] = off_t(at)
            sizes[i] = length
          }
          guard let fd = fds.baseAddress, let offset = offsets.baseAddress, let size = sizes.baseAddress else {
            return false
          }
          _ = clip_fuse_reply_fds(req, fd, offset, size, pieces.count)
          return true
        }
      }
    }
  }

  func opendir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
    guard let number = inode(ino), directoryNode(number) != nil else { return reply(req, ENOTDIR) }
    // Nothing is kept per open directory. Where the kernel can do without opendir and releasedir (two round trips
    // for every directory a walk visits), ENOSYS tells it to, and it then caches listings as if asked to (keep_cache,
    // cache_readdir).
    if opendirOptional.load(ordering: .relaxed) { return reply(req, ENOSYS) }
    fi.pointee.keep_cache = 1
    fi.pointee.cache_readdir = 1
    fuse_reply_open(req, fi)
  }

  func readdir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t, plus: Bool) {
    guard let number = inode(ino), let directory = directoryNode(number) else { return reply(req, ENOTDIR) }
    let children = tree.children(of: directory)
    var buffer = [CChar](repeating: 0, count: size)
    var used = 0
    var position = Int(offset)
    let parentInode = tree.nodes[Int(tree.nodes[Int(directory)].parent)].inode
    buffer.withUnsafeMutableBufferPointer { out in
      guard let base = out.baseAddress else { return }
      while position < children.count + 2 {
        let (name, target): ([UInt8], Int32) =
          position == 0
          ? (Array(".".utf8), number)
          : position == 1
            ? (Array("..".utf8), parentInode)
            : (
              Array(tree.nodes[Int(children[children.startIndex + position - 2])].name),
              tree.nodes[Int(children[children.startIndex + position - 2])].inode
            )
        let needed = (name + [0]).withUnsafeBufferPointer { cName in
          cName.withMemoryRebound(to: CChar.self) { cName -> Int in
            if plus {
              var entry = entryParam(target)
              if position < 2 { entry.ino = 0 }  // "." and ".." take no lookup count
              entry.attr = attributes(target)
              return fuse_add_direntry_plus(
                req, base + used, size - used, cName.baseAddress, &entry, off_t(position + 1))
            }
            var st = attributes(target)
            return fuse_add_direntry(req, base + used, size - used, cName.baseAddress, &st, off_t(position + 1))
          }
        }
        if needed > size - used { break }  // nothing was written: the rest goes in the next call
        used += needed
        position += 1
      }
    }
    fuse_reply_buf(req, buffer, used)
  }

  func xattrs(_ number: Int32) -> [ExtendedAttribute] { tree.xattrs(of: number) }

  func getxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>, _ size: Int) {
    guard servesXattrs else { return reply(req, ENOSYS) }
    guard let number = inode(ino) else { return reply(req, ENOENT) }
    let wanted = String(cString: name)
    guard let xattr = xattrs(number).first(where: { $0.name == wanted }) else { return reply(req, ENODATA) }
    replySized(req, xattr.value, size)
  }

  func listxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int) {
    guard let number = inode(ino) else { return reply(req, ENOENT) }
    replySized(req, xattrs(number).flatMap { Array($0.name.utf8) + [0] }, size)
  }

  /// The xattr protocol: size 0 asks for the length; a buffer too small is ERANGE.
  private func replySized(_ req: fuse_req_t, _ value: [UInt8], _ size: Int) {
    if size == 0 {
      fuse_reply_xattr(req, value.count)
    } else if size < value.count {
      reply(req, ERANGE)
    } else {
      value.withUnsafeBytes { _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count) }
    }
  }

  func statfs(_ req: fuse_req_t) {
    var st = statvfs()
    let bytes = tree.inodes.reduce(UInt64(0)) { $0 + ($1.kind == .regular ? $1.size : 0) }
    st.f_bsize = 4096
    st.f_frsize = 4096
    st.f_blocks = UInt((bytes + 4095) / 4096)
    st.f_files = UInt(tree.inodes.count)
    st.f_namemax = 255
    fuse_reply_statfs(req, &st)
  }

  func reply(_ req: fuse_req_t, _ error: Int32) { fuse_reply_err(req, error) }

  func initialize(_ conn: UnsafeMutablePointer<fuse_conn_info>) {
    let wanted =
      UInt32(FUSE_CAP_CACHE_SYMLINKS) | UInt32(FUSE_CAP_SPLICE_WRITE) | UInt32(FUSE_CAP_SPLICE_MOVE)
      | UInt32(FUSE_CAP_READDIRPLUS) | UInt32(FUSE_CAP_PARALLEL_DIROPS) | UInt32(FUSE_CAP_ASYNC_READ)
    conn.pointee.want |= wanted & conn.pointee.capable
    opendirOptional.store(conn.pointee.capable & UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT) != 0, ordering: .relaxed)
    conn.pointee.want &= ~UInt32(FUSE_CAP_READDIRPLUS_AUTO)  // always readdirplus: one call for a whole `ls -l`
    conn.pointee.max_readahead = UInt32(Self.readaheadKiB << 10)
    // Read requests follow max_write (libfuse derives the kernel's max_pages from it); nothing is ever written.
    conn.pointee.max_write = Self.maxRequest
  }
}

// MARK: - C callbacks (no captures: the server comes from the session's userdata)

private func server(_ req: fuse_req_t?) -> FuseServer? {
  guard let req else { return nil }
  return server(userdata: fuse_req_userdata(req))
}

private func server(userdata: UnsafeMutableRawPointer?) -> FuseServer? {
  guard let userdata, let server = userdata.assumingMemoryBound(to: clip_fuse_session_data.self).pointee.server
  else { return nil }
  return Unmanaged<FuseServer>.fromOpaque(server).takeUnretainedValue()
}

private let fuseInit: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<fuse_conn_info>?) -> Void = {
  userdata, conn in
  guard let conn, let server = server(userdata: userdata) else { return }
  server.initialize(conn)
}

private let fuseLookup: @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?) -> Void = { req, parent, name in
  guard let req, let name, let server = server(req) else { return }
  server.lookup(req, parent, name)
}

private let fuseGetattr: @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
  req, ino, _ in
  guard let req, let server = server(req) else { return }
  server.getattr(req, ino)
}

private let fuseReadlink: @convention(c) (fuse_req_t?, fuse_ino_t) -> Void = { req, ino in
  guard let req, let server = server(req) else { return }
  server.readlink(req, ino)
}

private let fuseOpen: @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
  req, ino, fi in
  guard let req, let fi, let server = server(req) else { return }
  server.open(req, ino, fi)
}

private let fuseRead:
  @convention(c) (fuse_req_t?, fuse_ino_t, Int, off_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
    req, ino, size, offset, _ in
    guard let req, let server = server(req) else { return }
    server.read(req, ino, size, offset)
  }

private let fuseRelease: @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
  req, ino, fi in
  guard let req, let fi, let server = server(req) else { return }
  server.release(req, ino, fi)
}

private let fuseOpendir: @convention(c) (fuse_req_t?, fuse_ino_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
  req, ino, fi in
  guard let req, let fi, let server = server(req) else { return }
  server.opendir(req, ino, fi)
}

private let fuseReaddir:
  @convention(c) (fuse_req_t?, fuse_ino_t, Int, off_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
    req, ino, size, offset, _ in
    guard let req, let server = server(req) else { return }
    server.readdir(req, ino, size, offset, plus: false)
  }

private let fuseReaddirplus:
  @convention(c) (fuse_req_t?, fuse_ino_t, Int, off_t, UnsafeMutablePointer<fuse_file_info>?) -> Void = {
    req, ino, size, offset, _ in
    guard let req, let server = server(req) else { return }
    server.readdir(req, ino, size, offset, plus: true)
  }

private let fuseGetxattr: @convention(c) (fuse_req_t?, fuse_ino_t, UnsafePointer<CChar>?, Int) -> Void = {
  req, ino, name, size in
  guard let req, let name, let server = server(req) else { return }
  server.getxattr(req, ino, name, size)
}

private let fuseListxattr: @convention(c) (fuse_req_t?, fuse_ino_t, Int) -> Void = { req, ino, size in
  guard let req, let server = server(req) else { return }
  server.listxattr(req, ino, size)
}

private let fuseStatfs: @convention(c) (fuse_req_t?, fuse_ino_t) -> Void = { req, _ in
  guard let req, let server = server(req) else { return }
  server.statfs(req)
}
