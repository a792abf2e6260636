import ClipCore
import Foundation

// Source: https://github.com/opencontainers/image-spec/blob/main/manifest.md

/// An image manifest (OCI or Docker v2 schema 2, which share this shape).
public struct Manifest: Codable, Sendable {
  /// Always 2.
  public var schemaVersion: Int
  /// The manifest's own media type, when it states one.
  public var mediaType: String?
  /// The image configuration blob.
  public var config: Descriptor
  /// The layers, base first.
  public var layers: [Descriptor]
  /// The manifest this one refers to (OCI 1.1 artifacts).
  public var subject: Descriptor?
  /// The artifact type (OCI 1.1).
  public var artifactType: String?
  /// Extra metadata.
  public var annotations: [String: String]?

  /// Creates a manifest.
  public init(
    mediaType: String? = MediaType.ociManifest, config: Descriptor, layers: [Descriptor],
    subject: Descriptor? = nil, artifactType: String? = nil, annotations: [String: String]? = nil
  ) {
    self.schemaVersion = 2
    self.mediaType = mediaType
    self.config = config
    self.layers = layers
    self.subject = subject
    self.artifactType = artifactType
    self.annotations = annotations
  }
}

/// An image index (OCI) or manifest list (Docker): one manifest per platform.
public struct Index: Codable, Sendable {
  /// Always 2.
  public var schemaVersion: Int
  /// The index's own media type, when it states one.
  public var mediaType: String?
  /// The manifests it lists.
  public var manifests: [Descriptor]
  /// Extra metadata.
  public var annotations: [String: String]?

  /// Creates an index.
  public init(mediaType: String? = MediaType.ociIndex, manifests: [Descriptor]) {
    self.schemaVersion = 2
    self.mediaType = mediaType
    self.manifests = manifests
  }

  /// The manifest for `platform`, or a clear error listing what the index offers.
  public func manifest(for platform: Platform) throws -> Descriptor {
    if let match = manifests.first(where: { $0.platform.map(platform.matches) ?? false }) { return match }
    let offered = manifests.compactMap { $0.platform?.description }.joined(separator: ", ")
    throw ClipError(.notFound, "no manifest for platform \(platform) (the index has: \(offered))")
  }
}

/// Decodes JSON into a spec value with a clear error naming what was being read.
public func decodeJSON<T: Decodable>(_ type: T.Type, from bytes: [UInt8], what: String) throws -> T {
  do {
    return try JSONDecoder().decode(type, from: Data(bytes))
  } catch let error as ClipError {
    throw error.adding(what)
  } catch {
    throw ClipError(.corrupt, "malformed \(what): \(error)")
  }
}

/// The `mediaType` field of a JSON document, to tell a manifest from an index before decoding it fully.
public func sniffMediaType(_ bytes: [UInt8]) -> String? {
  struct Probe: Decodable {
    var mediaType: String?
    var manifests: [Descriptor]?
    var layers: [Descriptor]?
  }
  guard let probe = try? JSONDecoder().decode(Probe.self, from: Data(bytes)) else { return nil }
  if let type = probe.mediaType { return type }
  if probe.manifests != nil { return MediaType.ociIndex }
  if probe.layers != nil { return MediaType.ociManifest }
  return nil
}
