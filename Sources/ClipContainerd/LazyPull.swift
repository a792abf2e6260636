import ClipCore
import ClipOCI
import ClipRegistry
import ContainerdAPI
import Foundation

/// A lazy pull into containerd (specs/snapshotter.md, "clip pull"): the image's manifests and config go into the
/// content store, each layer is prepared through containerd's snapshots API with the remote-snapshot labels so that
/// `clip snapshotter` mounts it lazily and answers that it exists, and the image record points at the image — what
/// `ctr image pull` does, without downloading a layer. A layer the snapshotter does not take (another snapshotter,
/// or a fallback it logged) is downloaded and unpacked by containerd's diff service instead, and reported.
public struct LazyPull: Sendable {
  /// What happened to each layer.
  public enum LayerOutcome: String, Sendable {
    /// The snapshotter mounts it lazily.
    case lazy
    /// It was downloaded and unpacked (the snapshotter did not take it lazily).
    case downloaded
    /// containerd had its snapshot already.
    case present
  }

  /// The image's name in containerd (`REGISTRY/REPOSITORY[:TAG][@DIGEST]`, as `ctr` names it).
  public var name: String
  /// The snapshotter to unpack with.
  public var snapshotter: String
  /// Where the layer bytes come from when a layer must be downloaded.
  public var source: any ImageSource
  /// The image as resolved for the platform, with its documents.
  public var image: ResolvedImage
  /// The clip index (and profile) published for the image, if any: named in the labels so the snapshotter fetches
  /// them straight.
  public var published: PublishedIndex.Blobs?
  /// Progress lines.
  public var log: @Sendable (String) -> Void

  /// Creates a pull.
  public init(
    name: String, snapshotter: String, source: any ImageSource, image: ResolvedImage, published: PublishedIndex.Blobs?,
    log: @escaping @Sendable (String) -> Void
  ) {
    self.name = name
    self.snapshotter = snapshotter
    self.source = source
    self.image = image
    self.published = published
    self.log = log
  }

  /// Runs the pull against `containerd` and returns each layer's outcome.
  public func run(_ containerd: ContainerdClient) async throws -> [LayerOutcome] {
    var client = containerd
    let lease = try await client.createLease(expiry: 3600)
    client.lease = lease
    do {
      let outcomes = try await pull(client)
      try await containerd.deleteLease(lease)
      return outcomes
    } catch {
      try? await containerd.deleteLease(lease)
      throw error
    }
  }

  private func pull(_ client: ContainerdClient) async throws -> [LayerOutcome] {
    let chain = image.config.rootfs.chainIDs
    guard let top = chain.last, !image.documents.isEmpty else {
      throw ClipError(.unsupported, "\(name) has no layers")
    }
    var outcomes: [LayerOutcome] = []
    for (number, layer) in image.manifest.layers.enumerated() {
      outcomes.append(try await unpack(layer: layer, number: number, chain: chain, client))
    }
    // Documents from the config up: each one's labels name what it refers to, so once the image record exists
    // containerd's collector keeps the whole image (its config keeps the top snapshot).
    for (number, document) in image.documents.enumerated().reversed() {
      let labels = references(of: document, next: image.documents.dropFirst(number + 1).first, top: top)
      let bytes = document.bytes
      try await client.writeContent(
        digest: document.descriptor.digest.description, size: Int64(bytes.count), labels: labels
      ) { _ in bytes }
    }
    try await client.putImage(name: name, target: containerdDescriptor(image.documents[0].descriptor))
    return outcomes
  }

  /// The garbage-collection labels of one document.
  private func references(of document: FetchedDocument, next: FetchedDocument?, top: Digest) -> [String: String] {
    let type = document.descriptor.mediaType
    if MediaType.isIndex(type), let next {
      return [GarbageCollectionLabels.content("m", 0): next.descriptor.digest.description]
    }
    if MediaType.isManifest(type) {
      var labels = [GarbageCollectionLabels.content("config"): image.manifest.config.digest.description]
      for (number, layer) in image.manifest.layers.enumerated() {
        labels[GarbageCollectionLabels.content("l", number)] = layer.digest.description
      }
      return labels
    }
    return [GarbageCollectionLabels.snapshot(snapshotter): top.description]  // the config
  }

  /// Makes the snapshot of layer `number` exist under its chain ID: lazily through the snapshotter's remote
  /// protocol, else by downloading and applying it.
  private func unpack(
    layer: Descriptor, number: Int, chain: [Digest], _ client: ContainerdClient
  ) async throws -> LayerOutcome {
    let target = chain[number].description
    if try await client.snapshotExists(snapshotter, target) { return .present }
    let parent = number > 0 ? chain[number - 1].description : ""
    var labels = [
      RemoteLabels.targetRef: target,
      RemoteLabels.imageRef: name,
      RemoteLabels.manifestDigest: image.manifestDigest.description,
      RemoteLabels.layerDigest: layer.digest.description,
    ]
    if let published { labels.merge(published.fields(.remoteLabels)) { $1 } }
    // CRI lists this layer and the ones above it, as far as a label's 4 KiB allow
    var listed = ""
    for above in image.manifest.layers[number...] {
      let next = listed.isEmpty ? above.digest.description : listed + "," + above.digest.description
      guard next.utf8.count + RemoteLabels.imageLayers.utf8.count <= 4000 else { break }
      listed = next
    }
    labels[RemoteLabels.imageLayers] = listed
    let key = "extract-clip-pull-\(UUID().uuidString.lowercased()) \(target)"
    guard let mounts = try await client.prepare(snapshotter, key: key, parent: parent, labels: labels) else {
      log("layer \(number + 1)/\(chain.count) \(layer.digest): mounted lazily by snapshotter \(snapshotter)")
      return .lazy
    }
    log(
      "layer \(number + 1)/\(chain.count) \(layer.digest): snapshotter \(snapshotter) did not mount it lazily"
        + " (its log says why); downloading \(layer.size) bytes")
    do {
      let source = self.source
      let digest = layer.digest
      let size = layer.size
      try await client.writeContent(digest: digest.description, size: size, labels: [:]) { offset in
        let end = min(UInt64(size), UInt64(offset) + (4 << 20))
        return try source.read(digest, range: UInt64(offset)..<end)
      }
      try await client.apply(containerdDescriptor(layer), onto: mounts)
      try await client.commit(snapshotter, name: target, key: key, labels: [RemoteLabels.targetRef: target])
    } catch {
      try? await client.removeSnapshot(snapshotter, key)
      throw error
    }
    return .downloaded
  }
}

extension PublishedIndex.Blobs.Keys {
  /// clip's own remote-snapshot labels naming the published index and profile (`RemoteLabels.indexBlob`…), which
  /// `clip pull` sets and `clip snapshotter` reads.
  public static let remoteLabels = Self(
    indexBlob: RemoteLabels.indexBlob, indexSize: RemoteLabels.indexSize, profileBlob: RemoteLabels.profileBlob,
    profileSize: RemoteLabels.profileSize)
}

/// containerd's form of a descriptor.
func containerdDescriptor(_ descriptor: Descriptor) -> Containerd_Types_Descriptor {
  var converted = Containerd_Types_Descriptor()
  converted.mediaType = descriptor.mediaType
  converted.digest = descriptor.digest.description
  converted.size = descriptor.size
  return converted
}
