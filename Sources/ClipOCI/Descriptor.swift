import ClipCore

// Source: https://github.com/opencontainers/image-spec/blob/main/descriptor.md

/// A reference to a blob: its media type, digest and size.
public struct Descriptor: Codable, Sendable, Equatable {
  /// The media type of the referenced content.
  public var mediaType: String
  /// The digest of the referenced content.
  public var digest: Digest
  /// The size of the referenced content in bytes.
  public var size: Int64
  /// Extra metadata (e.g. `org.opencontainers.image.ref.name`).
  public var annotations: [String: String]?
  /// The platform of a manifest in an index.
  public var platform: Platform?
  /// The artifact type of the referenced content (OCI 1.1).
  public var artifactType: String?

  /// Creates a descriptor.
  public init(
    mediaType: String, digest: Digest, size: Int64, annotations: [String: String]? = nil,
    platform: Platform? = nil, artifactType: String? = nil
  ) {
    self.mediaType = mediaType
    self.digest = digest
    self.size = size
    self.annotations = annotations
    self.platform = platform
    self.artifactType = artifactType
  }

  /// The annotation naming a tag in an OCI image layout's index.json.
  public static let refNameAnnotation = "org.opencontainers.image.ref.name"
}
