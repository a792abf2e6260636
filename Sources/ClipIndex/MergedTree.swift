import ClipArchive
import ClipCore

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
    /// The name (raw bytes; empty for the root).
    public var name: [UInt8]
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
  public func child(of node: Int32, named name: some Collection<UInt8>) -> Int32? {
    let list = children(of: node)
    var low = list.startIndex
    var high = list.endIndex
    while low < high {
      let mid = (low + high) / 2
      let candidate = nodes[Int(list[mid])].name
      if candidate.lexicographicallyPrecedes(name) {
        low = mid + 1
      } else if name.lexicographicallyPrecedes(candidate) {
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
    var parts: [[UInt8]] = []
    var current = node
    while current != Self.root {
      parts.append(nodes[Int(current)].name)
      current = nodes[Int(current)].parent
    }
    return Array(parts.reversed().joined(separator: [UInt8(ascii: "/")]))
  }
}

/// The mutable side of the merge: directories as hash maps, rebuilt into sorted arrays at the end.
private struct TreeBuilder {
  struct BuildNode {
    var name: [UInt8]
    var parent: Int32
    var inode: Int32
    var children: [[UInt8]: Int32]?  // non-nil for directories
  }

  var nodes: [BuildNode] = []
  var inodes: [MergedTree.Inode] = []
  private var cachedParentPath: [UInt8]? = nil
  private var cachedParent: Int32 = 0

  static let whiteoutPrefix = Array(".wh.".utf8)
  static let opaqueMarker = Array(".wh..wh..opq".utf8)

  let layers: [LayerIndex]

  init(layers: [LayerIndex]) {
    self.layers = layers
    inodes.append(Self.implicitDirectory())
    nodes.append(BuildNode(name: [], parent: 0, inode: 0, children: [:]))
  }

  static func implicitDirectory() -> MergedTree.Inode {
    MergedTree.Inode(
      kind: .directory, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNanoseconds: 0, linkCount: 0,
      layer: -1, entry: -1)
  }

  mutating func apply(_ layer: LayerIndex, number: Int32) throws {
    cachedParentPath = nil
    // Whiteouts and opaque markers first: they hide lower layers only.
    for entry in layer.entries {
      let (parentPath, name) = Self.split(entry.path)
      if name.elementsEqual(Self.opaqueMarker) {
        if let dir = try resolve(parentPath), nodes[Int(dir)].children != nil { nodes[Int(dir)].children = [:] }
      } else if name.starts(with: Self.whiteoutPrefix) {
        if let dir = try resolve(parentPath), nodes[Int(dir)].children != nil {
          nodes[Int(dir)].children?[Array(name.dropFirst(Self.whiteoutPrefix.count))] = nil
        }
      }
    }
    cachedParentPath = nil
    for (index, entry) in layer.entries.enumerated() {
      let (parentPath, name) = Self.split(entry.path)
      if name.starts(with: Self.whiteoutPrefix) { continue }
      try ClipError.inContext("entry '\(entry.displayPath)'") {
        try add(entry, name: name, parentPath: parentPath, layer: number, index: Int32(index))
      }
    }
  }

  private mutating func add(_ entry: TarEntry, name: ArraySlice<UInt8>, parentPath: ArraySlice<UInt8>, layer: Int32, index: Int32)
    throws
  {
    let inode = MergedTree.Inode(
      kind: entry.kind, mode: entry.mode, uid: entry.uid, gid: entry.gid,
      size: entry.kind == .symlink ? UInt64(entry.linkTarget.count) : entry.size, mtime: entry.mtime,
      mtimeNanoseconds: entry.mtimeNanoseconds, linkCount: 0, layer: layer, entry: index)
    if entry.path.isEmpty {  // the root itself
      if entry.kind == .directory { inodes[Int(nodes[0].inode)] = inode }
      return
    }
    let parent = try directory(parentPath)
    let key = Array(name)
    let existing = nodes[Int(parent)].children?[key]
    switch entry.kind {
    case .directory:
      if let existing, nodes[Int(existing)].children != nil {
        inodes[Int(nodes[Int(existing)].inode)] = inode
        return
      }
      inodes.append(inode)
      insert(BuildNode(name: key, parent: parent, inode: Int32(inodes.count - 1), children: [:]), into: parent)
    case .hardlink:
      guard let target = try resolve(entry.linkTarget[...], followFinal: false) else {
        throw ClipError(.corrupt, "hard link target '\(String(decoding: entry.linkTarget, as: UTF8.self))' does not exist")
      }
      guard nodes[Int(target)].children == nil else {
        throw ClipError(.corrupt, "hard link to directory '\(String(decoding: entry.linkTarget, as: UTF8.self))'")
      }
      if target == existing { return }  // a link to itself changes nothing
      insert(BuildNode(name: key, parent: parent, inode: nodes[Int(target)].inode, children: nil), into: parent)
    default:
      inodes.append(inode)
      insert(BuildNode(name: key, parent: parent, inode: Int32(inodes.count - 1), children: nil), into: parent)
    }
  }

  private mutating func insert(_ node: BuildNode, into parent: Int32) {
    if let old = nodes[Int(parent)].children?[node.name], nodes[Int(old)].children != nil {
      cachedParentPath = nil  // a directory is replaced: cached lookups may point into it
    }
    let index = Int32(nodes.count)
    nodes.append(node)
    nodes[Int(parent)].children?[node.name] = index
  }

  static func split(_ path: [UInt8]) -> (parent: ArraySlice<UInt8>, name: ArraySlice<UInt8>) {
    guard let slash = path.lastIndex(of: UInt8(ascii: "/")) else { return (path[0..<0], path[...]) }
    return (path[..<slash], path[(slash + 1)...])
  }

  /// The directory at `path`, creating missing ones and replacing non-directories on the way (symlinks to
  /// directories inside the image are followed).
  private mutating func directory(_ path: ArraySlice<UInt8>) throws -> Int32 {
    if let cached = cachedParentPath, cached.elementsEqual(path) { return cachedParent }
    var node: Int32 = 0
    var hops = 0
    var pending = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Array($0) }.reversed()
      .map { $0 }
    while let part = pending.popLast() {
      if part == Array(".".utf8) { continue }
      if part == Array("..".utf8) {
        node = nodes[Int(node)].parent
        continue
      }
      if let next = nodes[Int(node)].children?[part] {
        let info = inodes[Int(nodes[Int(next)].inode)]
        if nodes[Int(next)].children != nil {
          node = next
          continue
        }
        if info.kind == .symlink, let target = symlinkTarget(next) {
          hops += 1
          guard hops <= 40 else { throw ClipError(.corrupt, "too many levels of symbolic links") }
          if target.first == UInt8(ascii: "/") { node = 0 }
          pending += target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Array($0) }
            .reversed()
          continue
        }
      }
      inodes.append(Self.implicitDirectory())
      insert(BuildNode(name: part, parent: node, inode: Int32(inodes.count - 1), children: [:]), into: node)
      node = Int32(nodes.count - 1)
    }
    cachedParentPath = Array(path)
    cachedParent = node
    return node
  }

  private func symlinkTarget(_ node: Int32) -> [UInt8]? {
    let inode = inodes[Int(nodes[Int(node)].inode)]
    return inode.layer >= 0 ? layers[Int(inode.layer)].entries[Int(inode.entry)].linkTarget : nil
  }

  /// The node at `path` without creating anything; intermediate symlinks are followed.
  private func resolve(_ path: ArraySlice<UInt8>, followFinal: Bool = true) throws -> Int32? {
    var node: Int32 = 0
    var hops = 0
    var pending = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Array($0) }.reversed()
      .map { $0 }
    while let part = pending.popLast() {
      if part == Array(".".utf8) { continue }
      if part == Array("..".utf8) {
        node = nodes[Int(node)].parent
        continue
      }
      guard let next = nodes[Int(node)].children?[part] else { return nil }
      if inodes[Int(nodes[Int(next)].inode)].kind == .symlink, followFinal || !pending.isEmpty,
        let target = symlinkTarget(next)
      {
        hops += 1
        guard hops <= 40 else { throw ClipError(.corrupt, "too many levels of symbolic links") }
        if target.first == UInt8(ascii: "/") { node = 0 }
        pending += target.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { Array($0) }
          .reversed()
        continue
      }
      node = next
    }
    return node
  }

  mutating func hideRuntimeDirectories() {
    for name in MergedTree.runtimeDirectories {
      if let node = nodes[0].children?[name], nodes[Int(node)].children != nil { nodes[Int(node)].children = [:] }
    }
  }

  /// Keeps what is reachable from the root, numbering each directory's children together in name order, and
  /// counts links.
  func finish() -> ([MergedTree.Node], [MergedTree.Inode], [Int32], [Int32]) {
    var outNodes: [MergedTree.Node] = []
    var outInodes: [MergedTree.Inode] = []
    var childList: [Int32] = []
    var primary: [Int32] = []
    var inodeMap = [Int32](repeating: -1, count: inodes.count)
    outNodes.reserveCapacity(nodes.count)

    func newInode(_ old: Int32, node: Int32) -> Int32 {
      if inodeMap[Int(old)] >= 0 {
        outInodes[Int(inodeMap[Int(old)])].linkCount += 1
        return inodeMap[Int(old)]
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
    while let (old, new) = stack.popLast() {
      guard let children = nodes[Int(old)].children else { continue }
      let sorted = children.sorted { $0.key.lexicographicallyPrecedes($1.key) }
      let start = Int32(childList.count)
      var subdirectories: UInt32 = 0
      var pushes: [(Int32, Int32)] = []
      for (name, child) in sorted {
        let index = Int32(outNodes.count)
        let isDirectory = nodes[Int(child)].children != nil
        if isDirectory { subdirectories += 1 }
        outNodes.append(MergedTree.Node(name: name, parent: new, inode: 0, childStart: 0, childCount: 0))
        outNodes[Int(index)].inode = newInode(nodes[Int(child)].inode, node: index)
        childList.append(index)
        if isDirectory { pushes.append((child, index)) }
      }
      outNodes[Int(new)].childStart = start
      outNodes[Int(new)].childCount = Int32(sorted.count)
      outInodes[Int(outNodes[Int(new)].inode)].linkCount = 2 + subdirectories
      stack.append(contentsOf: pushes.reversed())
    }
    return (outNodes, outInodes, childList, primary)
  }
}
