import ArgumentParser
import ClipArchive
import ClipCore
import ClipIndex
import Foundation

/// `clip ls IMAGE.clip [PATH] [-l]`
struct ListCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ls", abstract: "List a directory of the image's merged root filesystem.")

  @Argument(help: "The index file.")
  var index: String

  @Argument(help: "A path in the image.")
  var path: String = "/"

  @Flag(name: .short, help: "Long listing: mode, links, owner, size, mtime.")
  var long = false

  func run() throws {
    try reportingErrors {
      let image = try loadIndex(index)
      let tree = try MergedTree(layers: image.layerIndexes)
      guard let node = tree.resolve(rawArgument(path)) else {
        throw ClipError(.notFound, "no such file or directory in the image: \(path)")
      }
      let inode = tree.inodes[Int(tree.nodes[Int(node)].inode)]
      let shown = inode.kind == .directory ? Array(tree.children(of: node)) : [node]
      var out: [UInt8] = []
      for child in shown {
        let name = inode.kind == .directory ? tree.nodes[Int(child)].name : rawArgument(path)[...]
        if long { out += Array(longFormat(tree, child).utf8) }
        out += name
        if long, let target = symlinkTarget(tree, child) { out += Array(" -> ".utf8) + target }
        out.append(10)
      }
      try writeOut(out)
    }
  }

  private func symlinkTarget(_ tree: MergedTree, _ node: Int32) -> [UInt8]? {
    let inode = tree.nodes[Int(node)].inode
    return tree.inodes[Int(inode)].kind == .symlink ? tree.entry(of: inode)?.linkTarget : nil
  }

  private func longFormat(_ tree: MergedTree, _ node: Int32) -> String {
    let number = tree.nodes[Int(node)].inode
    let inode = tree.inodes[Int(number)]
    var size = String(inode.size)
    if inode.kind == .characterDevice || inode.kind == .blockDevice, let entry = tree.entry(of: number) {
      size = "\(entry.deviceMajor), \(entry.deviceMinor)"
    }
    let date = Date(timeIntervalSince1970: TimeInterval(inode.mtime))
    let formatter = ISO8601DateFormatter()
    return "\(modeString(inode)) \(pad(inode.linkCount, 3)) \(pad(inode.uid, 5)) \(pad(inode.gid, 5)) "
      + "\(String(repeating: " ", count: max(0, 10 - size.count)))\(size) \(formatter.string(from: date)) "
  }

  private func pad(_ value: some BinaryInteger, _ width: Int) -> String {
    let text = String(value)
    return String(repeating: " ", count: max(0, width - text.count)) + text
  }

  private func modeString(_ inode: MergedTree.Inode) -> String {
    let mode = inode.mode
    var chars = Array("rwxrwxrwx")
    for i in 0..<9 where mode & (1 << (8 - UInt32(i))) == 0 { chars[i] = "-" }
    if mode & 0o4000 != 0 { chars[2] = chars[2] == "x" ? "s" : "S" }
    if mode & 0o2000 != 0 { chars[5] = chars[5] == "x" ? "s" : "S" }
    if mode & 0o1000 != 0 { chars[8] = chars[8] == "x" ? "t" : "T" }
    return String(inode.kind.letter) + String(chars)
  }
}
