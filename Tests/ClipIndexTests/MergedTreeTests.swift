import ClipArchive
import ClipCore
import ClipIndex
import Testing

func entry(_ path: String, _ kind: EntryKind = .regular, mode: UInt32 = 0o644, link: String = "", mtime: Int64 = 1)
  -> TarEntry
{
  TarEntry(
    path: Array(path.utf8), kind: kind, mode: mode, size: kind == .regular ? 1 : 0, mtime: mtime,
    linkTarget: Array(link.utf8))
}

@Suite struct MergedTreeTests {
  func tree(_ layers: [[TarEntry]]) throws -> MergedTree {
    try MergedTree(layers: layers.enumerated().map { try makeLayer($0.element, digestSeed: UInt8($0.offset)) })
  }

  func paths(_ tree: MergedTree) -> [String] {
    (1..<tree.nodes.count).map { String(decoding: tree.path(of: Int32($0)), as: UTF8.self) }.sorted()
  }

  func inode(_ tree: MergedTree, _ path: String) throws -> MergedTree.Inode {
    let node = try #require(tree.lookup(Array(path.utf8)))
    return tree.inodes[Int(tree.nodes[Int(node)].inode)]
  }

  @Test func implicitParentsAreDirectories() throws {
    let t = try tree([[entry("a/b/c/file")]])
    #expect(paths(t) == ["a", "a/b", "a/b/c", "a/b/c/file"])
    let a = try inode(t, "a")
    #expect(a.kind == .directory && a.mode == 0o755 && a.layer == -1)
  }

  @Test func whiteoutsHideLowerLayersOnly() throws {
    let t = try tree([
      [entry("d", .directory), entry("d/x"), entry("d/y"), entry("gone", .directory), entry("gone/z")],
      [entry("d/.wh.x"), entry("d/new"), entry("new2"), entry(".wh.gone"), entry(".wh.new2")],
    ])
    #expect(paths(t) == ["d", "d/new", "d/y", "new2"])
  }

  @Test(arguments: [true, false])
  func opaqueMarkerWhereverItStands(markerFirst: Bool) throws {
    var upper = [entry("d", .directory, mode: 0o700), entry("d/fresh")]
    if markerFirst { upper.insert(entry("d/.wh..wh..opq"), at: 0) } else { upper.append(entry("d/.wh..wh..opq")) }
    let t = try tree([[entry("d", .directory), entry("d/old"), entry("d/sub/deep")], upper])
    #expect(paths(t) == ["d", "d/fresh"])
    #expect(try inode(t, "d").mode == 0o700)
  }

  @Test func typeChangesAcrossLayers() throws {
    let t = try tree([
      [entry("f2d"), entry("d2f", .directory), entry("d2f/child"), entry("f2l")],
      [entry("f2d", .directory), entry("f2d/inner"), entry("d2f"), entry("f2l", .symlink, link: "/etc")],
    ])
    #expect(paths(t) == ["d2f", "f2d", "f2d/inner", "f2l"])
    #expect(try inode(t, "d2f").kind == .regular)
    #expect(try inode(t, "f2l").kind == .symlink)
  }

  @Test func redeclaredDirectoryKeepsChildren() throws {
    let t = try tree([
      [entry("d", .directory, mode: 0o755), entry("d/keep")], [entry("d", .directory, mode: 0o1777, mtime: 99)],
    ])
    #expect(paths(t) == ["d", "d/keep"])
    let d = try inode(t, "d")
    #expect(d.mode == 0o1777 && d.mtime == 99)
  }

  @Test func hardlinksShareAnInode() throws {
    let t = try tree([
      [entry("a"), entry("b", .hardlink, link: "a"), entry("sub/c", .hardlink, link: "a"), entry("solo")],
      [entry("b")],  // replacing one name breaks it out of the group
    ])
    let a = try #require(t.lookup(Array("a".utf8)))
    let c = try #require(t.lookup(Array("sub/c".utf8)))
    #expect(t.nodes[Int(a)].inode == t.nodes[Int(c)].inode)
    #expect(try inode(t, "a").linkCount == 2)
    #expect(try inode(t, "b").linkCount == 1)
    #expect(try inode(t, "solo").linkCount == 1)
    #expect(try inode(t, "sub").linkCount == 2)
    #expect(t.inodes[0].linkCount == 3)  // root: itself, ".", and "sub"
  }

  @Test func missingHardlinkTargetIsAnError() throws {
    let error = try #require(throws: ClipError.self) { try tree([[entry("b", .hardlink, link: "nowhere")]]) }
    #expect(error.message.contains("does not exist"))
    #expect(error.context.contains { $0.hasPrefix("layer 1") })
  }

  @Test func runtimeDirectoriesAreEmpty() throws {
    let t = try tree([[entry("proc/cpuinfo"), entry("sys/x"), entry("dev/null", .characterDevice), entry("etc/x")]])
    #expect(paths(t) == ["dev", "etc", "etc/x", "proc", "sys"])
  }

  @Test func parentSymlinksAreFollowed() throws {
    let t = try tree([[entry("usr/lib", .directory), entry("lib", .symlink, link: "usr/lib")], [entry("lib/libc.so")]])
    #expect(paths(t) == ["lib", "usr", "usr/lib", "usr/lib/libc.so"])
    #expect(t.resolve(Array("lib/libc.so".utf8)) == t.lookup(Array("usr/lib/libc.so".utf8)))
  }

  @Test func rootEntrySetsRootMetadata() throws {
    let t = try tree([[entry("", .directory, mode: 0o700, mtime: 42), entry("x")]])
    #expect(t.inodes[0].mode == 0o700 && t.inodes[0].mtime == 42)
  }
}

@Suite struct LayerTreeTests {
  @Test(arguments: [true, false])
  func aLayerTreeIsInOverlayForm(markerFirst: Bool) throws {
    var upper = [entry("d", .directory, mode: 0o700), entry("d/fresh"), entry("e/.wh.x"), entry(".wh.top")]
    if markerFirst { upper.insert(entry("d/.wh..wh..opq"), at: 0) } else { upper.append(entry("d/.wh..wh..opq")) }
    let layers = try [
      makeLayer([entry("d", .directory), entry("d/old"), entry("e/x"), entry("top"), entry("proc/1")], digestSeed: 0),
      makeLayer(upper, digestSeed: 1),
    ]
    let tree = try MergedTree(layers: layers, layer: 1)
    let names = (1..<tree.nodes.count).map { String(decoding: tree.path(of: Int32($0)), as: UTF8.self) }.sorted()
    #expect(names == ["d", "d/fresh", "e", "e/x", "top"])
    for hidden in ["e/x", "top"] {
      let inode = tree.inodes[Int(tree.nodes[Int(try #require(tree.lookup(Array(hidden.utf8))))].inode)]
      #expect(inode.kind == .characterDevice && inode.layer == 1, "\(hidden)")
    }
    let directory = tree.nodes[Int(try #require(tree.lookup(Array("d".utf8))))].inode
    #expect(tree.inodes[Int(directory)].opaque && tree.inodes[Int(directory)].mode == 0o700)
    #expect(tree.xattrs(of: directory) == [ExtendedAttribute(name: MergedTree.opaqueAttribute, value: Array("y".utf8))])
    #expect(tree.xattrs(of: tree.nodes[Int(try #require(tree.lookup(Array("e".utf8))))].inode).isEmpty)
    #expect(try MergedTree(layers: layers, layer: 0).lookup(Array("proc/1".utf8)) != nil)
  }
}
