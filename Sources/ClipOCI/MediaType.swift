// Source: https://github.com/opencontainers/image-spec/blob/main/media-types.md
// and https://distribution.github.io/distribution/spec/manifest-v2-2/

/// The media types clip reads, OCI and Docker v2 alike.
public enum MediaType {
  /// OCI image manifest.
  public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
  /// OCI image index (multi-platform).
  public static let ociIndex = "application/vnd.oci.image.index.v1+json"
  /// OCI image config.
  public static let ociConfig = "application/vnd.oci.image.config.v1+json"
  /// OCI uncompressed layer.
  public static let ociLayer = "application/vnd.oci.image.layer.v1.tar"
  /// OCI gzip layer.
  public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
  /// OCI zstd layer.
  public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
  /// OCI non-distributable layers (deprecated, still read).
  public static let ociForeignLayerGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
  /// Docker v2 schema 2 manifest.
  public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
  /// Docker manifest list (multi-platform).
  public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
  /// Docker image config.
  public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
  /// Docker uncompressed layer (skopeo writes it when the registry holds an uncompressed copy).
  public static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar"
  /// Docker gzip layer.
  public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
  /// Docker foreign gzip layer.
  public static let dockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

  /// True for the single-image manifest types.
  public static func isManifest(_ type: String) -> Bool { type == ociManifest || type == dockerManifest }
  /// True for the multi-platform index types.
  public static func isIndex(_ type: String) -> Bool { type == ociIndex || type == dockerManifestList }
}

/// How a layer blob is compressed, as its media type says.
public enum LayerCompression: UInt8, Sendable, Codable, CustomStringConvertible {
  /// An uncompressed tar.
  case none = 0
  /// gzip, one or more members.
  case gzip = 1
  /// zstd, one or more frames.
  case zstd = 2

  /// The compression a layer media type promises; nil for a type that is not a layer.
  public init?(mediaType: String) {
    switch mediaType {
    case MediaType.ociLayer, MediaType.dockerLayer, "application/vnd.oci.image.layer.nondistributable.v1.tar":
      self = .none
    case MediaType.ociLayerGzip, MediaType.ociForeignLayerGzip, MediaType.dockerLayerGzip,
      MediaType.dockerForeignLayerGzip:
      self = .gzip
    case MediaType.ociLayerZstd, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": self = .zstd
    default: return nil
    }
  }

  /// `none`, `gzip` or `zstd`.
  public var description: String {
    switch self {
    case .none: "none"
    case .gzip: "gzip"
    case .zstd: "zstd"
    }
  }
}
