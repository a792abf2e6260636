import ClipArchive
import ClipCore

/// The mutable side of the merge. All directory entries live in one open-addressing hash table keyed by
/// (directory, generation, name): emptying a directory (an opaque marker) bumps its generation instead of visiting its
/// children, nothing is allocated per directory, and names are compared as bytes in place. `finish` keeps what the
/// root reaches, sorted.
struct TreeBuilder {
  struct BuildNode {
    var name: ArraySlice<UInt8>
    var parent: Int32
    var inode: Int32
    var isDirectory: Bool
    var generation: Int32 = 0
  }

  /// A slot of the directory-entry table: the key (parent, its generation, name hash) and the node it names.
  struct Slot {
    var hash: UInt32 = 0
    var parent: Int32 = 0
    var generation: Int32 = 0
    /// The node, or `empty` / `removed`.
    var node: Int32 = Slot.empty

    static let empty: Int32 = -1
    static let removed: Int32 = -2
  }

  let layers: [LayerIndex]
  var nodes: [BuildNode] = []
  var inodes: [MergedTree.Inode] = []
  var slots: [Slot] = []
  var used = 0  // slots that are not empty (live, stale or removed)
  private var cachedParentPath: ArraySlice<UInt8>? = nil
  private var cachedParent: Int32 = 0
  /// Overlay form: whiteout devices of the layer, and directories to mark opaque once the layer is in.
  private var whiteouts = Set<Int32>()
  private var opaque = Set<Int32>()

  static let whiteoutPrefix = Array(".wh.".utf8)
  static let opaqueMarker = Array(".wh..wh..opq".utf8)
  static let dot = Array(".".utf8)
  static let dotdot = Array("..".utf8)

  init(layers: [LayerIndex]) {
    self.layers = layers
    let total = layers.reduce(0) { $0 + $1.entries.count }
    nodes.reserveCapacity(total + 1)
    inodes.reserveCapacity(total + 1)
    var capacity = 1024
    while capacity < total * 2 + 64 { capacity <<= 1 }
    slots = [Slot](repeating: Slot(), count: capacity)
    inodes.append(Self.implicitDirectory())
    nodes.append(BuildNode(name: [], parent: 0, inode: 0, isDirectory: true))
  }

  static func implicitDirectory() -> MergedTree.Inode {
    MergedTree.Inode(
      kind: .directory, mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0, mtimeNanoseconds: 0, linkCount: 0,
      layer: -1, entry: -1)
  }

  // MARK: Directory entries

  static func hash(_ name: ArraySlice<UInt8>, parent: Int32, generation: Int32) -> UInt32 {
    var h: UInt32 = 2_166_136_261  // FNV-1a over the name, then mixed with the directory
    name.withUnsafeBufferPointer { bytes in
      for byte in bytes { h = (h ^ UInt32(byte)) &* 16_777_619 }
    }
    h ^= UInt32(bitPattern: parent) &* 0x9E37_79B1 ^ UInt32(bitPattern: generation) &* 0x85EB_CA77
    h ^= h >> 16
    h = h &* 0x85EB_CA6B
    h ^= h >> 13
    h = h &* 0xC2B2_AE35
    return h ^ (h >> 16)
  }

  /// Finds the slot of (directory, name): the live one if present, else where to insert.
  private func find(_ directory: Int32, _ name: ArraySlice<UInt8>) -> (slot: Int, node: Int32?, hash: UInt32) {
    let generation = nodes[Int(directory)].generation
    let hash = Self.hash(name, parent: directory, generation: generation)
    let mask = slots.count - 1
    var index = Int(hash) & mask
    var insertAt: Int? = nil
    while true {
      let slot = slots[index]
      if slot.node == Slot.empty { return (insertAt ?? index, nil, hash) }
      if slot.node == Slot.removed {
        if insertAt == nil { insertAt = index }
      } else if slot.hash == hash, slot.parent == directory, slot.generation == generation,
        compareNames(nodes[Int(slot.node)].name, name) == 0
      {
        return (index, slot.node, hash)
      }
      index = (index + 1) & mask
    }
  }

  func child(of directory: Int32, _ name: ArraySlice<UInt8>) -> Int32? { find(directory, name).node }

  /// Points (directory, name) at `node`, or removes the entry when `node` is nil; returns what it named before.
  @discardableResult
  mutating func setChild(of directory: Int32, _ name: ArraySlice<UInt8>, _ node: Int32?) -> Int32? {
    let (index, old, hash) = find(directory, name)
    guard let node else {
      if old != nil { slots[index].node = Slot.removed }
      return old
    }
    if slots[index].node == Slot.empty { used += 1 }
    let generation = nodes[Int(directory)].generation
    slots[index] = Slot(hash: hash, parent: directory, generation: generation, node: node)
    if used * 10 > slots.count * 7 { grow() }
    return old
  }

  private mutating func grow() {
    let old = slots
    slots = [Slot](repeating: Slot(), count: old.count * 2)
    used = 0
    let mask = slots.count - 1
    for slot in old where slot.node >= 0 && slot.generation == nodes[Int(slot.parent)].generation {
      var index = Int(slot.hash) & mask
      while slots[index].node != Slot.empty { index = (index + 1) & mask }
      slots[index] = slot
      used += 1
    }
  }

  mutating func empty(_ directory: Int32) { nodes[Int(directory)].generation += 1 }

  // MARK: Layers

  /// Adds a layer's entries. Merging (`overlayForm` false), whiteouts and opaque markers remove what lower layers
  /// added; in overlay form (one layer's own tree) they become character devices 0/0 and opaque directories.
  mutating func apply(_ layer: LayerIndex, number: Int32, overlayForm: Bool = false) throws {
    cachedParentPath = nil
    // Whiteouts and opaque markers first: they hide lower layers only.
    for index in layer.entries.indices where !overlayForm {
      let path = layer.entries[index].path
      guard Self.isWhiteout(path) else { continue }
      let (parentPath, name) = Self.split(path)
      guard let dir = try resolve(parentPath), nodes[Int(dir)].isDirectory else { continue }
      if name.elementsEqual(Self.opaqueMarker) {
        empty(dir)
      } else {
        setChild(of: dir, name.dropFirst(Self.whiteoutPrefix.count), nil)
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
          if name.starts(with: Self.whiteoutPrefix) {
            if overlayForm {
              try addWhiteout(entry, name: name, parentPath: parentPath, layer: number, index: Int32(index))
            }
            continue
          }
          try add(entry, name: name, parentPath: parentPath, layer: number, index: Int32(index))
        }
      }
      // Opaque marks last: a directory's own entry (which replaces its inode) may come after its marker.
      for index in layer.entries.indices where overlayForm {
        let (parentPath, name) = Self.split(layer.entries[index].path)
        guard name.elementsEqual(Self.opaqueMarker) else { continue }
        current = index
        opaque.insert(try directory(parentPath))
      }
      for node in opaque where nodes[Int(node)].isDirectory { inodes[Int(nodes[Int(node)].inode)].opaque = true }
    } catch let error as ClipError {
      throw error.adding("entry '\(layer.entries[current].displayPath)'")
    }
  }

  /// In overlay form: `.wh.NAME` becomes a character device 0/0 called NAME (the opaque marker is not a file).
  private mutating func addWhiteout(
    _ entry: UnsafePointer<TarEntry>, name: ArraySlice<UInt8>, parentPath: ArraySlice<UInt8>, layer: Int32,
    index: Int32
  ) throws {
    guard !name.elementsEqual(Self.opaqueMarker) else { return }
    let hidden = name.dropFirst(Self.whiteoutPrefix.count)
    guard !hidden.isEmpty else { return }
    let parent = try directory(parentPath)
    // The layer also has an entry of that name: the whiteout hid only what is below, so a directory of the layer
    // becomes opaque and anything else stays as it is.
    if let existing = child(of: parent, hidden) {
      if nodes[Int(existing)].isDirectory { opaque.insert(existing) }
      return
    }
    inodes.append(
      MergedTree.Inode(
        kind: .characterDevice, mode: 0, uid: entry.pointee.uid, gid: entry.pointee.gid, size: 0,
        mtime: entry.pointee.mtime, mtimeNanoseconds: entry.pointee.mtimeNanoseconds, linkCount: 0, layer: layer,
        entry: index))
    let node = Int32(nodes.count)
    nodes.append(BuildNode(name: hidden, parent: parent, inode: Int32(inodes.count - 1), isDirectory: false))
    setChild(of: parent, hidden, node)
    whiteouts.insert(node)
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
    let key = name
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
      nodes.append(BuildNode(name: key, parent: parent, inode: Int32(inodes.count - 1), isDirectory: false))
      if let old = setChild(of: parent, key, index), nodes[Int(old)].isDirectory {
        cachedParentPath = nil  // a directory is replaced: cached lookups may point into it
      }
    }
  }

  private mutating func insert(
    _ name: ArraySlice<UInt8>, parent: Int32, inode: Int32, isDirectory: Bool, replacing old: Int32?
  ) {
    if let old, nodes[Int(old)].isDirectory {
      cachedParentPath = nil  // a directory is replaced: cached lookups may point into it
    }
    let index = Int32(nodes.count)
    nodes.append(BuildNode(name: name, parent: parent, inode: inode, isDirectory: isDirectory))
    setChild(of: parent, name, index)
    // Overlay form: a directory where the layer whited out a name hides everything below it.
    if let old, isDirectory, whiteouts.contains(old) { opaque.insert(index) }
  }

  /// True if the last component of `path` starts with `.wh.` (checked without slicing).
  static func isWhiteout(_ path: [UInt8]) -> Bool {
    path.withUnsafeBufferPointer { bytes in
      let start = (bytes.lastIndex(of: UInt8(ascii: "/")) ?? -1) + 1
      guard bytes.count - start >= 4 else { return false }
      return bytes[start] == UInt8(ascii: ".") && bytes[start + 1] == UInt8(ascii: "w")
        && bytes[start + 2] == UInt8(ascii: "h") && bytes[start + 3] == UInt8(ascii: ".")
    }
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
      let key = part
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
    if let cached = cachedParentPath, compareNames(cached, path) == 0 { return cachedParent }
    let node = try walk(path, create: true, followFinal: true) ?? 0
    cachedParentPath = path
    cachedParent = node
    return node
  }

  /// The node at `path` without creating anything.
  private mutating func resolve(_ path: ArraySlice<UInt8>, followFinal: Bool = true) throws -> Int32? {
    try walk(path, create: false, followFinal: followFinal)
  }

  mutating func hideRuntimeDirectories() {
    for name in MergedTree.runtimeDirectories {
      if let node = child(of: 0, name[...]), nodes[Int(node)].isDirectory { empty(node) }
    }
  }

  /// Keeps what is reachable from the root, numbering each directory's children together in name order, and
  /// counts links.
  func finish() -> ([MergedTree.Node], [MergedTree.Inode], [Int32], [Int32]) {
    // Live entries grouped by directory (a counting sort on the parent), each group in creation (tar) order.
    var live = [Bool](repeating: false, count: nodes.count)
    var starts = [Int32](repeating: 0, count: nodes.count + 1)
    for slot in slots where slot.node >= 0 && slot.generation == nodes[Int(slot.parent)].generation {
      live[Int(slot.node)] = true
      starts[Int(slot.parent) + 1] += 1
    }
    for i in 1..<starts.count { starts[i] += starts[i - 1] }
    var fill = starts
    var grouped = [Int32](repeating: 0, count: Int(starts[nodes.count]))
    for index in nodes.indices where live[index] {
      let parent = Int(nodes[index].parent)
      grouped[Int(fill[parent])] = Int32(index)
      fill[parent] += 1
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
      // Tar writers usually list a directory in name order already: sort only when needed.
      let inOrder = members.indices.dropFirst().allSatisfy {
        compareNames(nodes[Int(members[$0 - 1])].name, nodes[Int(members[$0])].name) < 0
      }
      if !inOrder { members.sort { compareNames(nodes[Int($0)].name, nodes[Int($1)].name) < 0 } }
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
