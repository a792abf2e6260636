import ClipCore
import ClipOCI
import Foundation
import Synchronization

// Source: https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-referrers
// and https://github.com/opencontainers/image-spec/blob/main/manifest.md#guidelines-for-artifact-usage

/// Indexes published beside their image, as OCI artifacts whose subject is the image manifest (specs/published-index.md).
public enum PublishedIndex {
  /// The artifact type of a published clip index.
  public static let artifactType = "application/vnd.clip.index.v1"
  /// The media type of the index file blob.
  public static let layerMediaType = "application/vnd.clip.index.v1+binary"
  /// OCI's empty config descriptor for artifacts.
  public static let emptyConfig: [UInt8] = Array("{}".utf8)
  /// Media type of the empty config.
  public static let emptyMediaType = "application/vnd.oci.empty.v1+json"
  /// The artifact's annotation naming its index blob (`sha256:…`), copied into referrers listings: a reader fetches
  /// the blob straight from the listing, one round trip fewer.
  public static let blobAnnotation = "dev.clip.index.blob"
  /// The artifact's annotation giving the index blob's size in bytes.
  public static let sizeAnnotation = "dev.clip.index.size"
  /// The media type of a prefetch profile published with the index (the artifact's second layer).
  public static let profileMediaType = "application/vnd.clip.profile.v1+text"
  /// The artifact's annotation naming its profile blob, if it has one.
  public static let profileBlobAnnotation = "dev.clip.profile.blob"
  /// The artifact's annotation giving the profile blob's size in bytes.
  public static let profileSizeAnnotation = "dev.clip.profile.size"

  /// The tag of the referrers tag-schema fallback for a manifest: `sha256-<hex>`.
  public static func fallbackTag(_ digest: Digest) -> String { "sha256-" + digest.hex }

  /// The blobs of a published artifact: the index, and the prefetch profile published with it, if any.
  public struct Blobs: Sendable, Equatable {
    /// The index file.
    public var index: Descriptor
    /// The prefetch profile (specs/mount.md), if one was published.
    public var profile: Descriptor?

    /// Creates the pair.
    public init(index: Descriptor, profile: Descriptor? = nil) {
      self.index = index
      self.profile = profile
    }

    /// The keys under which the pair is written as strings (a digest and a size each): the artifact's annotations,
    /// or containerd labels.
    public struct Keys: Sendable {
      /// The index blob's digest and size.
      public var indexBlob, indexSize: String
      /// The profile blob's digest and size.
      public var profileBlob, profileSize: String

      /// Names the keys.
      public init(indexBlob: String, indexSize: String, profileBlob: String, profileSize: String) {
        self.indexBlob = indexBlob
        self.indexSize = indexSize
        self.profileBlob = profileBlob
        self.profileSize = profileSize
      }

      /// The artifact's annotations (copied into referrers listings).
      public static let annotations = Keys(
        indexBlob: blobAnnotation, indexSize: sizeAnnotation, profileBlob: profileBlobAnnotation,
        profileSize: profileSizeAnnotation)
    }

    /// The pair written under `keys` in `fields`; nil if they do not name the index blob. A digest or size that is
    /// there but malformed is an error naming its key.
    public init?(_ fields: [String: String], keys: Keys) throws {
      guard let index = try Self.blob(fields, keys.indexBlob, keys.indexSize, layerMediaType) else { return nil }
      self.index = index
      profile = try Self.blob(fields, keys.profileBlob, keys.profileSize, profileMediaType)
    }

    /// The pair as strings under `keys`.
    public func fields(_ keys: Keys) -> [String: String] {
      var fields = [keys.indexBlob: index.digest.description, keys.indexSize: "\(index.size)"]
      if let profile {
        fields[keys.profileBlob] = profile.digest.description
        fields[keys.profileSize] = "\(profile.size)"
      }
      return fields
    }

    private static func blob(_ fields: [String: String], _ digestKey: String, _ sizeKey: String, _ type: String) throws
      -> Descriptor?
    {
      guard let named = fields[digestKey] else { return nil }
      let digest = try ClipError.inContext(digestKey) { try Digest(named) }
      guard let size = fields[sizeKey].flatMap({ Int64($0) }), size >= 0 else {
        throw ClipError(.invalidArgument, "\(sizeKey) must be the size of \(named) in bytes")
      }
      return Descriptor(mediaType: type, digest: digest, size: size)
    }
  }
}

extension RegistrySource {
  /// Publishes an index file (and a prefetch profile recorded on the image, if given) for the image manifest
  /// `subject` and returns the artifact manifest's digest. Registries with the referrers API index it by its subject;
  /// others get the tag-schema fallback: an image index under `sha256-<manifest hex>` listing the referrers (any other
  /// referrers listed there are kept).
  @discardableResult
  public func publishIndex(_ bytes: [UInt8], profile: [UInt8]? = nil, subject: Digest) throws -> Digest {
    let repository = reference.repository
    let subjectManifest = try client.manifest(repository, reference: subject.description)
    let layer = try client.uploadBlob(repository, bytes, mediaType: PublishedIndex.layerMediaType)
    let config = try client.uploadBlob(repository, PublishedIndex.emptyConfig, mediaType: PublishedIndex.emptyMediaType)
    let blobs = PublishedIndex.Blobs(
      index: layer,
      profile: try profile.map { try client.uploadBlob(repository, $0, mediaType: PublishedIndex.profileMediaType) })
    var annotations = blobs.fields(.annotations)
    annotations["dev.clip.index.format"] = "1"
    let artifact = Manifest(
      mediaType: MediaType.ociManifest, config: config, layers: [blobs.index] + (blobs.profile.map { [$0] } ?? []),
      subject: Descriptor(
        mediaType: subjectManifest.mediaType, digest: subject, size: Int64(subjectManifest.bytes.count)),
      artifactType: PublishedIndex.artifactType, annotations: annotations)
    let artifactBytes = try encodeJSON(artifact)
    let artifactDigest = Digest.of(artifactBytes)
    try client.putManifest(
      repository, reference: artifactDigest.description, artifactBytes, mediaType: MediaType.ociManifest)

    if try client.referrers(repository, of: subject, artifactType: PublishedIndex.artifactType) != nil {
      return artifactDigest  // the registry lists it by its subject
    }
    let tag = PublishedIndex.fallbackTag(subject)
    var referrers = Index(mediaType: MediaType.ociIndex, manifests: [])
    if let existing = try? client.manifest(repository, reference: tag),
      let index = try? decodeJSON(Index.self, from: existing.bytes, what: "referrers index")
    {
      referrers.manifests = index.manifests.filter { $0.artifactType != PublishedIndex.artifactType }
    }
    referrers.manifests.append(
      Descriptor(
        mediaType: MediaType.ociManifest, digest: artifactDigest, size: Int64(artifactBytes.count),
        annotations: artifact.annotations, artifactType: PublishedIndex.artifactType))
    try client.putManifest(repository, reference: tag, try encodeJSON(referrers), mediaType: MediaType.ociIndex)
    return artifactDigest
  }

  /// The blobs published for `subject` (the index, and its profile if any); nil if none are published. The referrers
  /// API and the tag-schema fallback are asked at once (registries without the API, like docker-registry 2.8, then
  /// cost no extra round trip), and a listing that names the blobs (`PublishedIndex.blobAnnotation`…) gives them
  /// without a further request; otherwise the artifact manifest is fetched and its subject checked.
  public func findPublishedBlobs(subject: Digest) throws -> PublishedIndex.Blobs? {
    let repository = reference.repository
    let client = self.client
    let answers = Mutex<
      (referrers: Result<Index?, any Error>?, fallback: Result<RegistryClient.FetchedManifest?, any Error>?)
    >(
      (nil, nil))
    DispatchQueue.concurrentPerform(iterations: 2) { which in
      if which == 0 {
        let listed = Result { try client.referrers(repository, of: subject, artifactType: PublishedIndex.artifactType) }
        answers.withLock { $0.referrers = listed }
      } else {
        let tagged = Result { () throws -> RegistryClient.FetchedManifest? in
          do {
            return try client.manifest(repository, reference: PublishedIndex.fallbackTag(subject))
          } catch let error as ClipError where error.code == .notFound {
            return nil
          }
        }
        answers.withLock { $0.fallback = tagged }
      }
    }
    let (referrers, fallback) = answers.withLock { ($0.referrers, $0.fallback) }
    var candidates: [Descriptor]
    if let listed = try referrers?.get() {
      candidates = listed.manifests
    } else if let tagged = try fallback?.get() {
      candidates = try decodeJSON(Index.self, from: tagged.bytes, what: "referrers index").manifests
    } else {
      return nil
    }
    for descriptor in candidates.reversed() where descriptor.artifactType == PublishedIndex.artifactType {
      // a listing's annotations that do not name the blobs well lead to the artifact manifest instead
      if let annotations = descriptor.annotations,
        let blobs = try? PublishedIndex.Blobs(annotations, keys: .annotations)
      {
        return blobs
      }
      let fetched = try client.manifest(repository, reference: descriptor.digest.description)
      let artifact = try decodeJSON(
        Manifest.self, from: fetched.bytes, what: "clip index artifact \(descriptor.digest)")
      guard artifact.subject?.digest == subject, artifact.artifactType == PublishedIndex.artifactType,
        let layer = artifact.layers.first, layer.mediaType == PublishedIndex.layerMediaType
      else { continue }
      return PublishedIndex.Blobs(
        index: layer, profile: artifact.layers.dropFirst().first { $0.mediaType == PublishedIndex.profileMediaType })
    }
    return nil
  }

  /// The bytes of the published index and, fetched at once, of its profile (if one was published: its failure does
  /// not fail the index, the caller says it goes without).
  public func publishedIndexAndProfile(_ blobs: PublishedIndex.Blobs) throws -> (
    index: [UInt8], profile: Result<[UInt8], any Error>?
  ) {
    guard let profileBlob = blobs.profile else { return (try publishedBlob(blobs.index), nil) }
    let fetched = Mutex<(index: Result<[UInt8], any Error>?, profile: Result<[UInt8], any Error>?)>((nil, nil))
    DispatchQueue.concurrentPerform(iterations: 2) { which in
      let blob = which == 0 ? blobs.index : profileBlob
      let result = Result { try publishedBlob(blob) }
      fetched.withLock { if which == 0 { $0.index = result } else { $0.profile = result } }
    }
    let (index, profile) = fetched.withLock { ($0.index, $0.profile) }
    guard let index else { throw ClipError(.system, "the published index fetch vanished") }
    return (try index.get(), profile)
  }

  /// The bytes of a published blob (an index or a profile), verified against its descriptor (digest and size).
  public func publishedBlob(_ blob: Descriptor) throws -> [UInt8] {
    let bytes = try client.blob(reference.repository, blob.digest, range: 0..<UInt64(max(blob.size, 0)))
    let what = blob.mediaType == PublishedIndex.profileMediaType ? "published clip profile" : "published clip index"
    try verify(bytes, against: blob, what: what)
    return bytes
  }
}

/// Deterministic JSON for what clip writes to registries.
func encodeJSON(_ value: some Encodable) throws -> [UInt8] {
  let encoder = JSONEncoder()
  encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
  return Array(try encoder.encode(value))
}
