import ClipCore
import ClipOCI

/// A layer as the image manifest lists it.
public struct ImageLayer: Sendable, Equatable {
  /// The layer's media type in the manifest.
  public var mediaType: String
  /// The layer blob digest.
  public var digest: Digest
  /// The layer blob size.
  public var size: UInt64
  /// The digest of the uncompressed layer (from the image config).
  public var diffID: Digest

  /// Creates a layer reference.
  public init(mediaType: String, digest: Digest, size: UInt64, diffID: Digest) {
    self.mediaType = mediaType
    self.digest = digest
    self.size = size
    self.diffID = diffID
  }
}

/// The index of one image: which manifest it describes, how to run it, and the index of each of its layers.
public struct ImageIndex: Sendable, Equatable {
  /// Where the image was indexed from (`oci:DIR:TAG`, `docker://HOST/REPO:TAG`); blobs are read from here.
  public var source: String
  /// The digest of the image manifest.
  public var manifestDigest: Digest
  /// The media type of the image manifest.
  public var manifestMediaType: String
  /// The image's platform.
  public var platform: Platform
  /// The digest of the image config.
  public var configDigest: Digest
  /// The image's run defaults: entrypoint, cmd, env, working dir, user.
  public var runConfig: ImageConfig.RunConfig
  /// The layers, base first.
  public var layers: [ImageLayer]
  /// The index of each layer, in the same order.
  public var layerIndexes: [LayerIndex]

  /// Creates an image index.
  public init(
    source: String, manifestDigest: Digest, manifestMediaType: String, platform: Platform, configDigest: Digest,
    runConfig: ImageConfig.RunConfig, layers: [ImageLayer], layerIndexes: [LayerIndex]
  ) {
    self.source = source
    self.manifestDigest = manifestDigest
    self.manifestMediaType = manifestMediaType
    self.platform = platform
    self.configDigest = configDigest
    self.runConfig = runConfig
    self.layers = layers
    self.layerIndexes = layerIndexes
  }
}
