import ClipCore
import ClipOCI

/// An image as a source resolved it: the manifest chosen for the platform and its config, both verified.
public struct ResolvedImage: Sendable {
  /// The manifest's digest.
  public var manifestDigest: Digest
  /// The manifest's media type.
  public var manifestMediaType: String
  /// The manifest.
  public var manifest: Manifest
  /// The config's digest.
  public var configDigest: Digest
  /// The image config.
  public var config: ImageConfig
  /// The platform of the chosen manifest.
  public var platform: Platform
  /// The documents read on the way, verified, in order: the top-level index or manifest, any nested index, the
  /// chosen manifest (when it is not the top), the config. What a content store needs to hold the image.
  public var documents: [FetchedDocument] = []
}

/// A manifest, index or config as fetched: its descriptor (media type, digest, size) and its bytes.
public struct FetchedDocument: Sendable {
  /// The media type, digest and size.
  public var descriptor: Descriptor
  /// The bytes.
  public var bytes: [UInt8]
}

/// Where an image's manifest and blobs come from: an OCI image layout on disk or (later) a registry.
///
/// Both give the same semantics and errors: a missing blob is `.notFound`, a short or out-of-range read `.corrupt`.
/// Implementations are safe to call from several threads at once.
public protocol ImageSource: Sendable {
  /// The source as the user can write it again (e.g. `oci:/abs/dir:tag`); recorded in indexes.
  var name: String { get }

  /// Finds the image manifest for `platform` (in a multi-platform index) and its config, verifying their digests.
  func resolve(platform: Platform) throws -> ResolvedImage

  /// Streams a whole blob: `body` gets a function that fills a buffer and returns the count (0 at the end).
  func withBlobStream<T>(
    _ digest: Digest, _ body: (@escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws -> T
  ) throws -> T

  /// Reads `range` of a blob.
  func read(_ digest: Digest, range: Range<UInt64>) throws -> [UInt8]

  /// Reads `range` of a blob like `read(_:range:)`, showing `arrived` the bytes received so far (a growing prefix of
  /// the range) as they come in, so that a caller can use the front of a long read before its end. An error thrown
  /// by `arrived` ends the read with it.
  func read(
    _ digest: Digest, range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) throws -> Void
  ) throws -> [UInt8]
}

extension ImageSource {
  /// All at once: `arrived` sees the whole range when it is in.
  public func read(
    _ digest: Digest, range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) throws -> Void
  ) throws -> [UInt8] {
    let bytes = try read(digest, range: range)
    try bytes.withUnsafeBytes { try arrived($0) }
    return bytes
  }
}

/// Whether `openImageSource` opens `text` as a registry image (not `oci:LAYOUT[:TAG]`).
public func isRegistrySource(_ text: String) -> Bool { !text.hasPrefix("oci:") }

/// Opens a source from its textual form: `oci:DIR[:TAG]` (skopeo's syntax), `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`
/// or a bare `REPO[:TAG]` (Docker Hub). Registries on loopback, or all with `plainHTTP`, are spoken to over HTTP.
/// With `readTimeout`, a registry range read fails after about that many seconds. Registry credentials come from
/// `authFile` (a Docker config.json) or Docker's default configuration.
public func openImageSource(
  _ text: String, plainHTTP: Bool = false, readTimeout: Int? = nil, authFile: String? = nil
) throws -> any ImageSource {
  if !isRegistrySource(text) { return try OCILayoutSource(reference: String(text.dropFirst(4))) }
  return try RegistrySource(
    reference: try ImageReference(text), plainHTTP: plainHTTP, readTimeout: readTimeout,
    credentials: CredentialStore(path: authFile))
}

extension ImageSource {
  /// Picks the image manifest for `platform` from a manifest or index document, following nested indexes.
  /// `chosen` learns the image manifest's digest as soon as it is known, before its config is fetched.
  func resolve(
    manifestBytes: [UInt8], digest: Digest, platform: Platform, chosen: (Digest) -> Void = { _ in },
    fetch: (Descriptor) throws -> [UInt8]
  ) throws -> ResolvedImage {
    var bytes = manifestBytes
    var digest = digest
    var documents: [FetchedDocument] = []
    for _ in 0..<4 {
      guard let type = sniffMediaType(bytes) else {
        throw ClipError(.corrupt, "\(digest) is neither an image manifest nor an index")
      }
      documents.append(
        FetchedDocument(
          descriptor: Descriptor(mediaType: type, digest: digest, size: Int64(bytes.count)), bytes: bytes))
      if MediaType.isIndex(type) {
        let index = try decodeJSON(Index.self, from: bytes, what: "image index \(digest)")
        let chosen = try index.manifest(for: platform)
        bytes = try fetch(chosen)
        digest = chosen.digest
        continue
      }
      guard MediaType.isManifest(type) else {
        throw ClipError(.unsupported, "\(digest) has media type \(type), not an image manifest")
      }
      let manifest = try decodeJSON(Manifest.self, from: bytes, what: "image manifest \(digest)")
      chosen(digest)
      let configBytes = try fetch(manifest.config)
      documents.append(FetchedDocument(descriptor: manifest.config, bytes: configBytes))
      let config = try decodeJSON(ImageConfig.self, from: configBytes, what: "image config \(manifest.config.digest)")
      guard config.rootfs.diffIDs.count == manifest.layers.count else {
        throw ClipError(
          .corrupt,
          "image config lists \(config.rootfs.diffIDs.count) diff IDs for \(manifest.layers.count) layers")
      }
      let imagePlatform = Platform(
        os: config.os ?? platform.os, architecture: config.architecture ?? platform.architecture,
        variant: config.variant)
      return ResolvedImage(
        manifestDigest: digest, manifestMediaType: type, manifest: manifest, configDigest: manifest.config.digest,
        config: config, platform: imagePlatform, documents: documents)
    }
    throw ClipError(.corrupt, "image indexes nest too deeply")
  }
}

/// Checks that fetched bytes have the digest (and size) their descriptor promises.
public func verify(_ bytes: [UInt8], against descriptor: Descriptor, what: String) throws {
  let actual = Digest.of(bytes)
  guard actual == descriptor.digest else {
    throw ClipError(.digestMismatch, "\(what) has digest \(actual), not \(descriptor.digest)")
  }
  guard Int64(bytes.count) == descriptor.size else {
    throw ClipError(.corrupt, "\(what) \(descriptor.digest) is \(bytes.count) bytes, not \(descriptor.size)")
  }
}
