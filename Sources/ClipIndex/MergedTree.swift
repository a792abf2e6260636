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
    /// A directory that hides what lower layers have in it (a layer tree's opaque directory, served with the
    /// `trusted.overlay.opaque` attribute); never set in a merged tree.
    public var opaque = false
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

  /// The tree of one layer as overlayfs wants a lower layer (specs/merged-tree.md): its own entries, whiteouts as
  /// character devices 0/0 under the name they hide, opaque directories marked; /proc, /sys and /dev as the layer
  /// has them. Inodes keep the layer's number `layer` in `layers`, so reads go to the right blob.
  public init(layers: [LayerIndex], layer: Int) throws {
    var builder = TreeBuilder(layers: layers)
    try ClipError.inContext("layer \(layer + 1) (\(layers[layer].digest))") {
      try builder.apply(layers[layer], number: Int32(layer), overlayForm: true)
    }
    var inodes: [Inode]
    (nodes, inodes, childList, primaryNode) = builder.finish()
    // A directory the layer only implies (a parent of its entries) must not hide the attributes the layers below
    // give it: overlayfs shows the topmost layer's. It takes the merged directory below, entry and all.
    if layer > 0 {
      let below = try MergedTree(layers: Array(layers[0..<layer]))
      for index in inodes.indices where inodes[index].layer < 0 && inodes[index].kind == .directory {
        var path: [UInt8] = []
        var node = primaryNode[index]
        while node != Self.root {
          path = Array(nodes[Int(node)].name) + (path.isEmpty ? [] : [UInt8(ascii: "/")] + path)
          node = nodes[Int(node)].parent
        }
        guard let found = below.lookup(path) else { continue }
        var inherited = below.inodes[Int(below.nodes[Int(found)].inode)]
        guard inherited.kind == .directory else { continue }
        inherited.linkCount = inodes[index].linkCount
        inherited.opaque = inodes[index].opaque
        inodes[index] = inherited
      }
    }
    self.inodes = inodes
    self.layers = layers
  }

  /// The extended attributes of an inode: its entry's, and `trusted.overlay.opaque` for an opaque directory.
  public func xattrs(of inode: Int32) -> [ExtendedAttribute] {
    let own = entry(of: inode)?.xattrs ?? []
    guard inodes[Int(inode)].opaque else { return own }
    return own.filter { $0.name != Self.opaqueAttribute } + [
      ExtendedAttribute(name: Self.opaqueAttribute, value: [0x79])
    ]
  }

  /// overlayfs's mark of an opaque directory.
  public static let opaqueAttribute = "trusted.overlay.opaque"

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
