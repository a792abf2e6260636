import ArgumentParser
import ClipCore
import ClipIndex

/// `clip cat IMAGE.clip PATH`
struct CatCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "cat", abstract: "Print a file of the image, read through the checkpoints from the blobs.")

  @Argument(help: "The index file.")
  var index: String

  @Argument(help: "A file in the image.")
  var path: String

  @Option(help: "Read blobs from this source instead of the one the index recorded.")
  var source: String?

  func run() throws {
    try reportingErrors {
      let reader = try openReader(index, source: source)
      guard let node = reader.tree.resolve(rawArgument(path)) else {
        throw ClipError(.notFound, "no such file in the image: \(path)")
      }
      let inode = reader.tree.nodes[Int(node)].inode
      guard reader.tree.inodes[Int(inode)].kind == .regular else {
        throw ClipError(.invalidArgument, "\(path) is a \(reader.tree.inodes[Int(inode)].kind), not a file")
      }
      try reader.read(inode: inode) { try writeOut($0) }
    }
  }
}
