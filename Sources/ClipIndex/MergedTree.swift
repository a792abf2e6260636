import ClipArchive
import ClipCore

#if canImport(Glibc)
  import Glibc
#endif

/// The image's root filesystem: its layers applied in order, as `umoci unpack` or a container runtime would see it.
///
/// Rules (OCI image-spec layer.md): `.wh.NAME` hides NAME of lower layers; `.wh..wh..opq` hides every lower-layer
/// child of its directory, wherever the marker stands in the tar; both act on lower layers only. Missing parents are
/// created as directories (0755, root, mtime 0). An entry replaces what its path held before unless both are
/// directories, in which case the metadata is replaced and the children kept. Hard links share one inode, with the
/// link count they have. The contents of `/proc`, `/sys` and `/dev` are not served: a runtime mounts its own there.
///
/// Immutable once built: FUSE threads read it without locks.
public struct MergedTree: Sendable {
  /// An inode: one file, however many names it has.
  public struct Inode: Sendable, Equatable {
    /// The kind of file (never `.hardlink`: a hard link is a second name of an inode).
    public var kind: EntryKind
    /// Permission and special bits.
    public var mode: UInt32
    /// Owner.
    public var uid: UInt32
    /// Group.
    public var gid: UInt32
    /// Size in bytes (regular files; symlinks: the target length).
    public var size: UInt64
    /// Modification time, seconds.
    public var mtime: Int64
    /// Modification time, nanoseconds.
    public var mtimeNanoseconds: UInt32
    /// Number of names (for directories: 2 + subdirectories).
    public var linkCount: UInt32
    /// The layer whose entry describes this inode, or -1 for a directory clip created (implicit parent, root).
    public var layer: Int32
    /// The entry in that layer.
    public var entry: Int32
  }

  /// A name in a directory.
  public struct Node: Sendable, Equatable {
    /// The name (raw bytes; empty for the root), a slice of the entry path it came from.
    public var name: ArraySlice<UInt8>
    /// The directory holding it (the root is its own parent).
    public var parent: Int32
    /// The inode it names.
    public var inode: Int32
    /// For a directory: its children, a range of `childList`, sorted by name.
    public var childStart: Int32
    /// Number of children.
    public var childCount: Int32
  }

  /// Every name, the root first; a directory's children are numbered together, in name order.
  public let nodes: [Node]
  /// Every inode.
  public let inodes: [Inode]
  /// Children of all directories, each directory's run sorted by name.
  public let childList: [Int32]
  /// For each inode, its first node (a directory's only node).
  public let primaryNode: [Int32]
  /// The layers the entries come from.
  public let layers: [LayerIndex]

  /// The root's node index.
  public static let root: Int32 = 0

  /// Directories whose contents are not served: the runtime mounts its own.
  public static let runtimeDirectories: Set<[UInt8]> = [Array("proc".utf8), Array("sys".utf8), Array("dev".utf8)]

  /// Builds the tree of `layers`, base first.
  public init(layers: [LayerIndex]) throws {
    var builder = TreeBuilder(layers: layers)
    for (i, layer) in layers.enumerated() {
      try ClipError.inContext("layer \(i + 1) (\(layer.digest))") { try builder.apply(layer, number: Int32(i)) }
    }
    builder.hideRuntimeDirectories()
    (nodes, inodes, childList, primaryNode) = builder.finish()
    self.layers = layers
  }

  /// The entry describing an inode, nil for directories clip created.
  public func entry(of inode: Int32) -> TarEntry? {
    let info = inodes[Int(inode)]
    guard info.layer >= 0 else { return nil }
    return layers[Int(info.layer)].entries[Int(info.entry)]
  }

  /// The children of a node, sorted by name.
  public func children(of node: Int32) -> ArraySlice<Int32> {
    let n = nodes[Int(node)]
    return childList[Int(n.childStart)..<Int(n.childStart + n.childCount)]
  }

  /// The child of directory `node` called `name`.
  public func child(of node: Int32, named name: [UInt8]) -> Int32? { child(of: node, named: name[...]) }

  /// The child of directory `node` called `name`.
  public func child(of node: Int32, named name: ArraySlice<UInt8>) -> Int32? {
    let list = children(of: node)
    var low = list.startIndex
    var high = list.endIndex
    while low < high {
      let mid = (low + high) / 2
      let order = compareNames(nodes[Int(list[mid])].name, name)
      if order < 0 {
        low = mid + 1
      } else if order > 0 {
        high = mid
      } else {
        return list[mid]
      }
    }
    return nil
  }

  /// The node at `path` (relative to the root, symlinks not followed), or nil.
  public func lookup(_ path: some Collection<UInt8>) -> Int32? {
    guard let parts = try? ImagePath.components(path) else { return nil }
    var node = Self.root
    for part in parts {
      guard let next = child(of: node, named: part) else { return nil }
      node = next
    }
    return node
  }

  /// The node at `path`, following symbolic links (confined to the image root), or nil.
  public func resolve(_ path: some Collection<UInt8>) -> Int32? {
    guard var pending = try? ImagePath.components(path).map(Array.init).reversed() as [[UInt8]] else { return nil }
    var node = Self.root
    var hops = 0
    while let part = pending.popLast() {
      if part == Array("..".utf8) {
        node = nodes[Int(node)].parent
        continue
      }
      guard let next = child(of: node, named: part) else { return nil }
      let inode = inodes[Int(nodes[Int(next)].inode)]
      if inode.kind == .symlink, let target = entry(of: nodes[Int(next)].inode)?.linkTarget {
        hops += 1
        guard hops <= 40 else { return nil }
        if target.first == UInt8(ascii: "/") { node = Self.root }
        for part in target.split(separator: UInt8(ascii: "/")).reversed() where part != [UInt8(ascii: ".")] {
          pending.append(Array(part))
        }
        continue
      }
      node = next
    }
    return node
  }

  /// The full path of a node, `/`-separated, without a leading `/`.
  public func path(of node: Int32) -> [UInt8] {
    var parts: [ArraySlice<UInt8>] = []
    var current = node
    while current != Self.root {
      parts.append(nodes[Int(current)].name)
      current = nodes[Int(current)].parent
    }
    return Array(parts.reversed().joined(separator: [UInt8(ascii: "/")]))
  }
}

/// Byte-wise order of two names (memcmp, then length): the order of a directory's children.
@inline(__always)
func compareNames(_ a: ArraySlice<UInt8>, _ b: ArraySlice<UInt8>) -> Int {
  let common = min(a.count, b.count)
  let order = a.withUnsafeBytes { x in
    b.withUnsafeBytes { y -> Int32 in
      guard common > 0, let p = x.baseAddress, let q = y.baseAddress else { return 0 }
      return memcmp(p, q, common)
    }
  }
  if order != 0 { return Int(order) }
  return a.count - b.count
}

/// A name as a hash key: hashed in one call over its bytes, not byte by byte.
struct NameKey: Hashable {
  let bytes: ArraySlice<UInt8>

  init(_ bytes: [UInt8]) { self.bytes = bytes[...] }
  init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

  func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
  static func == (a: NameKey, b: NameKey) -> Bool { a.bytes.count == b.bytes.count && compareNames(a.bytes, b.bytes) == 0 }
}

/// The mutable side of the merge. All directory entries live in one hash map keyed by (directory, generation, name):
/// emptying a directory (an opaque marker) bumps its generation instead of visiting its children, and nothing is
/// allocated per directory. `finish` keeps what the root reaches, sorted.
private struct TreeBuilder {
  struct BuildNode {
    var name: ArraySlice<UInt8>
    var parent: Int32
    var inode: Int32
    var isDirectory: Bool
    var generation: Int32 = 0
  }

  struct ChildKey: Hashable {
    let parent: Int32
    let generation: Int32
    let name: NameKey

    func hash(into hasher: inout Hasher) {
      hasher.combine(parent)
      hasher.combine(generation)
      name.hash(into: &hasher)
    }
  }

  let layers: [LayerIndex]
  var nodes: [BuildNode] = []
  var inodes: [MergedTree.Inode] = []
  var children: [ChildKey: Int32] = [:]
  private var cachedParentPath: [UInt8]? = nil
  private var cachedParent: Int32 = 0

  static let whiteoutPrefix = Array(".wh.".utf8)
  static let opaqueMarker = Array(".wh..wh..opq".utf8)
  static let dot = Array(".".utf8)
  static let dotdot = Array("..".utf8)

  init(layers: [LayerIndex]) {
    self.layers = layers
    let total = layers.reduce(0) { $0 + $1.entries.count }
    nodes.reserveCapacity(total + 1)
    inodes.reserveCapacity(total + 1)
    children.reserveCapacity(total)
    inodes.append(Self.implicitDirectory())
    nodes.append(BuildNode(name: [], parent: 0, inode: 0, isDirectory: true))
  }

  static func implicitDirectory() -> MergedTree.Inode {
    MergedTree.Inode(
      kind: .directory, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNanoseconds: 0, linkCount: 0,
      layer: -1, entry: -1)
  }

  // MARK: Directory entries

  func child(of directory: Int32, _ name: NameKey) -> Int32? {
    children[ChildKey(parent: directory, generation: nodes[Int(directory)].generation, name: name)]
  }

  mutating func setChild(of directory: Int32, _ name: NameKey, _ node: Int32?) {
    children[ChildKey(parent: directory, generation: nodes[Int(directory)].generation, name: name)] = node
  }

  mutating func empty(_ directory: Int32) { nodes[Int(directory)].generation += 1 }

  // MARK: Layers

  mutating func apply(_ layer: LayerIndex, number: Int32) throws {
    cachedParentPath = nil
    // Whiteouts and opaque markers first: they hide lower layers only.
    for entry in layer.entries {
      let (parentPath, name) = Self.split(entry.path)
      guard name.starts(with: Self.whiteoutPrefix) else { continue }
      guard let dir = try resolve(parentPath), nodes[Int(dir)].isDirectory else { continue }
      if name.elementsEqual(Self.opaqueMarker) {
        empty(dir)
      } else {
        setChild(of: dir, NameKey(name.dropFirst(Self.whiteoutPrefix.count)), nil)
      }
    }
    cachedParentPath = nil
    var current = 0
    do {
      // Entries are reached through a pointer: copying a TarEntry would retain and release each of its arrays.
      try layer.entries.withUnsafeBufferPointer { entries in
        guard let base = entries.baseAddress else { return }
        for index in 0..<entries.count {
          current = index
          let entry = base + index
          let (parentPath, name) = Self.split(entry.pointee.path)
          if name.starts(with: Self.whiteoutPrefix) { continue }
          try add(entry, name: name, parentPath: parentPath, layer: number, index: Int32(index))
        }
      }
    } catch let error as ClipError {
      throw error.adding("entry '\(layer.entries[current].displayPath)'")
    }
  }

  private mutating func add(
    _ entry: UnsafePointer<TarEntry>, name: ArraySlice<UInt8>, parentPath: ArraySlice<UInt8>, layer: Int32,
    index: Int32
  ) throws {
    let kind = entry.pointee.kind
    let inode = MergedTree.Inode(
      kind: kind, mode: entry.pointee.mode, uid: entry.pointee.uid, gid: entry.pointee.gid,
      size: kind == .symlink ? UInt64(entry.pointee.linkTarget.count) : entry.pointee.size,
      mtime: entry.pointee.mtime, mtimeNanoseconds: entry.pointee.mtimeNanoseconds, linkCount: 0, layer: layer,
      entry: index)
    if entry.pointee.path.isEmpty {  // the root itself
      if kind == .directory { inodes[Int(nodes[0].inode)] = inode }
      return
    }
    let parent = try directory(parentPath)
    let key = NameKey(name)
    switch kind {
    case .directory:
      let existing = child(of: parent, key)
      if let existing, nodes[Int(existing)].isDirectory {
        inodes[Int(nodes[Int(existing)].inode)] = inode
        return
      }
      inodes.append(inode)
      insert(key, parent: parent, inode: Int32(inodes.count - 1), isDirectory: true, replacing: existing)
    case .hardlink:
      let existing = child(of: parent, key)
      let linkTarget = entry.pointee.linkTarget
      let targetName = String(decoding: linkTarget, as: UTF8.self)
      guard let target = try resolve(linkTarget[...], followFinal: false) else {
        throw ClipError(.corrupt, "hard link target '\(targetName)' does not exist")
      }
      guard !nodes[Int(target)].isDirectory else { throw ClipError(.corrupt, "hard link to directory '\(targetName)'") }
      if target == existing { return }  // a link to itself changes nothing
      insert(key, parent: parent, inode: nodes[Int(target)].inode, isDirectory: false, replacing: existing)
    default:
      inodes.append(inode)
      let index = Int32(nodes.count)
      nodes.append(BuildNode(name: key.bytes, parent: parent, inode: Int32(inodes.count - 1), isDirectory: false))
      let generation = nodes[Int(parent)].generation
      if let old = children.updateValue(index, forKey: ChildKey(parent: parent, generation: generation, name: key)),
        nodes[Int(old)].isDirectory
      {
        cachedParentPath = nil  // a directory is replaced: cached lookups may point into it
      }
    }
  }

  private mutating func insert(_ name: NameKey, parent: Int32, inode: Int32, isDirectory: Bool, replacing old: Int32?) {
    if let old, nodes[Int(old)].isDirectory {
      cachedParentPath = nil  // a directory is replaced: cached lookups may point into it
    }
    let index = Int32(nodes.count)
    nodes.append(BuildNode(name: name.bytes, parent: parent, inode: inode, isDirectory: isDirectory))
    children[ChildKey(parent: parent, generation: nodes[Int(parent)].generation, name: name)] = index
  }

  static func split(_ path: [UInt8]) -> (parent: ArraySlice<UInt8>, name: ArraySlice<UInt8>) {
    guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return (path[0..<0], path[...]) }
    return (path[..<slash], path[(slash + 1)...])
  }

  private func symlinkTarget(_ node: Int32) -> [UInt8]? {
    let inode = inodes[Int(nodes[Int(node)].inode)]
    guard inode.kind == .symlink, inode.layer >= 0 else { return nil }
    return layers[Int(inode.layer)].entries[Int(inode.entry)].linkTarget
  }

  /// Walks `path` from the root. Symlinks met on the way (and at the end, if `followFinal`) are followed, confined
  /// to the root. With `create`, missing or non-directory components become directories; otherwise a missing
  /// component ends the walk with nil.
  private mutating func walk(_ path: ArraySlice<UInt8>, create: Bool, followFinal: Bool) throws -> Int32? {
    var node: Int32 = 0
    var hops = 0
    var pending = Array(path.split(separator: UInt8(ascii: "/")).reversed())
    while let part = pending.popLast() {
      if part.elementsEqual(Self.dot) { continue }
      if part.elementsEqual(Self.dotdot) {
        node = nodes[Int(node)].parent
        continue
      }
      let key = NameKey(part)
      if let next = child(of: node, key) {
        if nodes[Int(next)].isDirectory {
          node = next
          continue
        }
        if followFinal || !pending.isEmpty || create, let target = symlinkTarget(next) {
          hops += 1
          guard hops <= 40 else { throw ClipError(.corrupt, "too many levels of symbolic links") }
          if target.first == UInt8(ascii: "/") { node = 0 }
          pending += target.split(separator: UInt8(ascii: "/")).reversed()
          continue
        }
        if !create {
          guard pending.isEmpty else { return nil }
          return next
        }
      } else if !create {
        return nil
      }
      inodes.append(Self.implicitDirectory())
      insert(key, parent: node, inode: Int32(inodes.count - 1), isDirectory: true, replacing: child(of: node, key))
      node = Int32(nodes.count - 1)
    }
    return node
  }

  /// The directory at `path`, creating missing ones (and replacing non-directories) on the way.
  private mutating func directory(_ path: ArraySlice<UInt8>) throws -> Int32 {
    if let cached = cachedParentPath, cached.elementsEqual(path) { return cachedParent }
    let node = try walk(path, create: true, followFinal: true) ?? 0
    cachedParentPath = Array(path)
    cachedParent = node
    return node
  }

  /// The node at `path` without creating anything.
  private mutating func resolve(_ path: ArraySlice<UInt8>, followFinal: Bool = true) throws -> Int32? {
    try walk(path, create: false, followFinal: followFinal)
  }

  mutating func hideRuntimeDirectories() {
    for name in MergedTree.runtimeDirectories {
      if let node = child(of: 0, NameKey(name)), nodes[Int(node)].isDirectory { empty(node) }
    }
  }

  /// Keeps what is reachable from the root, numbering each directory's children together in name order, and
  /// counts links.
  func finish() -> ([MergedTree.Node], [MergedTree.Inode], [Int32], [Int32]) {
    // Live entries grouped by directory (a counting sort on the parent).
    var starts = [Int32](repeating: 0, count: nodes.count + 1)
    for (key, _) in children where key.generation == nodes[Int(key.parent)].generation {
      starts[Int(key.parent) + 1] += 1
    }
    for i in 1..<starts.count { starts[i] += starts[i - 1] }
    var fill = starts
    var grouped = [Int32](repeating: 0, count: Int(starts[nodes.count]))
    for (key, child) in children where key.generation == nodes[Int(key.parent)].generation {
      grouped[Int(fill[Int(key.parent)])] = child
      fill[Int(key.parent)] += 1
    }

    var outNodes: [MergedTree.Node] = []
    var outInodes: [MergedTree.Inode] = []
    var childList: [Int32] = []
    var primary: [Int32] = []
    var inodeMap = [Int32](repeating: -1, count: inodes.count)
    outNodes.reserveCapacity(nodes.count)
    outInodes.reserveCapacity(inodes.count)
    childList.reserveCapacity(grouped.count)

    func newInode(_ old: Int32, node: Int32) -> Int32 {
      let mapped = inodeMap[Int(old)]
      if mapped >= 0 {
        outInodes[Int(mapped)].linkCount += 1
        return mapped
      }
      var inode = inodes[Int(old)]
      inode.linkCount = 1
      outInodes.append(inode)
      primary.append(node)
      inodeMap[Int(old)] = Int32(outInodes.count - 1)
      return Int32(outInodes.count - 1)
    }

    outNodes.append(MergedTree.Node(name: [], parent: 0, inode: 0, childStart: 0, childCount: 0))
    outNodes[0].inode = newInode(nodes[0].inode, node: 0)
    var stack: [(old: Int32, new: Int32)] = [(0, 0)]
    var pushes: [(Int32, Int32)] = []
    while let (old, new) = stack.popLast() {
      var members = Array(grouped[Int(starts[Int(old)])..<Int(starts[Int(old) + 1])])
      members.sort { compareNames(nodes[Int($0)].name, nodes[Int($1)].name) < 0 }
      let start = Int32(childList.count)
      var subdirectories: UInt32 = 0
      pushes.removeAll(keepingCapacity: true)
      for child in members {
        let index = Int32(outNodes.count)
        let node = nodes[Int(child)]
        outNodes.append(MergedTree.Node(name: node.name, parent: new, inode: 0, childStart: 0, childCount: 0))
        outNodes[Int(index)].inode = newInode(node.inode, node: index)
        childList.append(index)
        if node.isDirectory {
          subdirectories += 1
          pushes.append((child, index))
        }
      }
      outNodes[Int(new)].childStart = start
      outNodes[Int(new)].childCount = Int32(members.count)
      outInodes[Int(outNodes[Int(new)].inode)].linkCount = 2 + subdirectories
      stack.append(contentsOf: pushes.reversed())
    }
    return (outNodes, outInodes, childList, primary)
  }
}
