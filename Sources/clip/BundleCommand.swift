import ArgumentParser
import ClipCore
import ClipIndex
import ClipRegistry
import ClipRuntime
import ClipStore
import Foundation

/// `clip bundle SOURCE DIR [-- COMMAND…]`: a runnable OCI bundle whose root filesystem the clip hook provides.
struct BundleCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bundle",
    abstract: "Write an OCI bundle (config.json and an empty rootfs) that runs an image through the clip hook.",
    discussion: "Then: runc run -b DIR NAME (or crun). The image is indexed now if it has no index yet.")

  @Argument(help: "The image: docker://HOST[:PORT]/REPO[:TAG|@DIGEST], REPO[:TAG] or oci:DIR[:TAG].")
  var source: String

  @Argument(help: "The bundle folder to create.")
  var directory: String

  @Argument(parsing: .postTerminator, help: "The command to run instead of the image's entrypoint and cmd.")
  var command: [String] = []

  @OptionGroup var options: HookOptions

  @Option(help: "The platform to pick from a multi-platform image (OS/ARCH[/VARIANT]).")
  var platform: String?

  @Option(help: "Prefetch for the image mount: none, all, or a profile path.")
  var prefetch: String?

  @OptionGroup var registry: RegistryOptions

  @Flag(help: "Make the container's root filesystem read-only.")
  var readonly = false

  func run() throws {
    try reportingErrors {
      var annotations = [Annotation.image: source]
      if let platform { annotations[Annotation.platform] = platform }
      if let prefetch { annotations[Annotation.prefetch] = prefetch }
      if let authfile = registry.authfile { annotations[Annotation.authFile] = absolute(authfile) }
      if registry.plainHTTP { annotations[Annotation.plainHTTP] = "true" }
      guard let request = try ImageRequest(annotations: annotations) else { return }

      let roots = try options.containerRoots(log: { FileHandle.standardError.write(Data("clip: \($0)\n".utf8)) })
      let indexPath = try roots.index(for: request)
      let index = try loadIndex(indexPath)
      // The bundle carries this image's entrypoint, environment and user: pin the reference to its manifest, so
      // that the container runs this image even if the tag moves, and the hook finds its index without asking the
      // registry what the tag names (one round trip less on a first start).
      if isRegistrySource(source) {
        annotations[Annotation.image] = try ImageReference(source).pinned(to: index.manifestDigest).description
      }
      let layout = try RuntimeLayout(root: options.root)
      var config = BundleConfig(
        run: index.runConfig, command: command.isEmpty ? nil : command, annotations: annotations,
        hookExecutable: try Daemon.executable(),
        hookArguments: [
          "--root", layout.root, "--cache-size", options.cacheSize, "--keep-warm", "\(options.keepWarm)",
        ])
      config.readonly = readonly
      if let user = index.runConfig.user, !user.isEmpty,
        user.split(separator: ":").contains(where: { UInt32($0) == nil })
      {
        let reader = try ImageReader(
          index: index,
          source: try openImageSource(request.reference, plainHTTP: registry.plainHTTP, authFile: request.authFile))
        config.passwd = try? read(reader, "/etc/passwd")
        config.group = try? read(reader, "/etc/group")
      }
      let json = try config.json()
      try FileManager.default.createDirectory(atPath: directory + "/rootfs", withIntermediateDirectories: true)
      try File.writeAtomically(directory + "/config.json", json)
      print(
        "bundle \(directory): \(try config.arguments().joined(separator: " ")) on \(annotations[Annotation.image] ?? source)"
      )
    }
  }

  private func read(_ reader: ImageReader, _ path: String) throws -> [UInt8] {
    guard let node = reader.tree.resolve(Array(path.utf8)) else { throw ClipError(.notFound, path) }
    var bytes: [UInt8] = []
    try reader.read(inode: reader.tree.nodes[Int(node)].inode) { bytes += $0 }
    return bytes
  }

  private func absolute(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
  }
}
