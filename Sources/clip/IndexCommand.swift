import ArgumentParser
import ClipCore
import ClipIndex
import ClipOCI
import ClipRegistry
import ClipStore
import Foundation

/// `clip index SOURCE -o IMAGE.clip`
struct IndexCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "index", abstract: "Index an image in one streaming pass.")

  @Argument(help: "The image: oci:LAYOUT_DIR[:TAG], docker://HOST[:PORT]/REPO[:TAG|@DIGEST] or REPO[:TAG].")
  var source: String

  @OptionGroup var registry: RegistryOptions

  @Option(name: .shortAndLong, help: "The index file to write.")
  var output: String

  @Option(help: "Uncompressed bytes between checkpoints (e.g. 512K, 4M).")
  var spanSize: String = "512K"

  @Option(help: "The platform to pick from a multi-platform image (OS/ARCH[/VARIANT]); default: this machine's.")
  var platform: String?

  @Option(help: "A directory of layer indexes reused across images (keyed by layer digest).")
  var layerCache: String?

  @Flag(help: "Publish the index in the image's repository, as an artifact whose subject is the image manifest.")
  var push = false

  @Flag(help: "Index the layers even if an index is published beside the image.")
  var ignorePublished = false

  @Option(
    help: ArgumentHelp(
      "With --push: publish this prefetch profile (clip mount --record) with the index.",
      discussion: "Nodes that use the published index then fetch what it lists at mount time (hook default)."))
  var profile: String?

  func run() throws {
    try reportingErrors {
      var indexer = ImageIndexer()
      indexer.spanSize = try parseSize(spanSize)
      if let platform { indexer.platform = try Platform(parsing: platform) }
      indexer.layerCache = layerCache
      indexer.usePublished = !ignorePublished
      let progress = ProgressLine("indexing")
      indexer.progress = { progress.update($0, $1) }
      indexer.note = { note in FileHandle.standardError.write(Data("clip: \(note)\n".utf8)) }
      let imageSource = try openImageSource(source, plainHTTP: registry.plainHTTP, authFile: registry.authfile)
      if push && !(imageSource is RegistrySource) {
        throw ClipError(.invalidArgument, "--push needs a registry source (docker://…)")
      }
      if profile != nil && !push { throw ClipError(.invalidArgument, "--profile goes with --push") }
      let profileBytes = try profile.map { path in
        try ClipError.inContext(path) {
          let bytes = try File.readAll(path)
          _ = try PrefetchProfile(parsing: String(decoding: bytes, as: UTF8.self))
          return bytes
        }
      }
      let index = try indexer.index(imageSource)
      progress.finish()
      let bytes = IndexFormat.encode(index)
      try ClipError.inContext(output) { try File.writeAtomically(output, bytes) }
      if push, let registry = imageSource as? RegistrySource {
        let artifact = try registry.publishIndex(bytes, profile: profileBytes, subject: index.manifestDigest)
        FileHandle.standardError.write(Data("clip: published the index as \(artifact)\n".utf8))
      }
    }
  }
}
