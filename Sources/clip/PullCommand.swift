import ArgumentParser
import ClipContainerd
import ClipCore
import ClipOCI
import ClipRegistry
import Foundation
import Synchronization

/// `clip pull REF --address SOCK [--namespace NS]`: a lazy pull into containerd (specs/snapshotter.md).
struct PullCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "pull",
    abstract: "Pull an image into containerd lazily: record it and let clip snapshotter mount its layers.",
    discussion: """
      Stores the image's manifest and config in containerd's content store, prepares each layer through containerd \
      with the remote-snapshot labels (clip snapshotter mounts it lazily instead of containerd downloading it) and \
      creates the image record, so that `ctr run --snapshotter clip IMAGE` starts at once. A layer the snapshotter \
      does not take is downloaded and unpacked as `ctr image pull` would, and said so.
      """)

  @Argument(help: "The image: docker://HOST[:PORT]/REPO[:TAG|@DIGEST] or a bare REPO[:TAG].")
  var reference: String

  @Option(help: "containerd's socket.")
  var address = "/run/containerd/containerd.sock"

  @Option(help: "The containerd namespace.")
  var namespace = "default"

  @Option(help: "The snapshotter to unpack with (containerd's name for clip snapshotter's proxy plugin).")
  var snapshotter = "clip"

  @Option(help: "The platform to pick from a multi-platform image (OS/ARCH[/VARIANT]); default: this machine's.")
  var platform: String?

  @OptionGroup var registry: RegistryOptions

  func run() throws {
    try reportingErrors {
      let imageReference = try ImageReference(reference)
      let source = try RegistrySource(
        reference: imageReference, plainHTTP: registry.plainHTTP,
        credentials: CredentialStore(path: registry.authfile))
      // The published index is looked up while the config is fetched: both need only the manifest digest.
      let lookup = Background<Result<PublishedIndex.Blobs?, any Error>>()
      let image = try source.resolve(platform: try platform.map(Platform.init(parsing:)) ?? .current) { manifest in
        lookup.start { Result { try source.findPublishedBlobs(subject: manifest) } }
      }
      let name = String(imageReference.description.dropFirst("docker://".count))
      let log: @Sendable (String) -> Void = { FileHandle.standardError.write(Data("clip pull: \($0)\n".utf8)) }
      let published: PublishedIndex.Blobs?
      switch lookup.wait() {
      case .success(let found): published = found
      case .failure(let error):
        log("looking for a published clip index failed (\(error)): the snapshotter looks again")
        published = nil
      case nil: published = nil
      }
      let pull = LazyPull(
        name: name, snapshotter: snapshotter, source: source, image: image, published: published, log: log)
      let (address, namespace) = (self.address, self.namespace)
      let outcomes = try runBlocking {
        try await ContainerdClient.with(address: address, namespace: namespace) { try await pull.run($0) }
      }
      let counts = [LazyPull.LayerOutcome.lazy, .downloaded, .present].map { outcome in
        "\(outcomes.filter { $0 == outcome }.count) \(outcome.rawValue)"
      }
      print("\(name): \(image.manifestDigest), \(outcomes.count) layers (\(counts.joined(separator: ", ")))")
    }
  }
}
