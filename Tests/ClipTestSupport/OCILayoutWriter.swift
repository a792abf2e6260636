import CCrypto
import ClipOCI
import Foundation

/// Writes a minimal OCI image layout for tests: given layer blobs (and their tar streams), a config and a manifest.
public struct OCILayoutWriter {
  public let directory: String

  public init(directory: String) throws {
    self.directory = directory
    try FileManager.default.createDirectory(atPath: directory + "/blobs/sha256", withIntermediateDirectories: true)
    try Data(#"{"imageLayoutVersion":"1.0.0"}"#.utf8).write(to: URL(fileURLWithPath: directory + "/oci-layout"))
  }

  public static func sha256(_ bytes: [UInt8]) -> String {
    var out = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    let context = EVP_MD_CTX_new()
    EVP_DigestInit_ex(context, EVP_sha256(), nil)
    bytes.withUnsafeBytes { _ = EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
    out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
    EVP_MD_CTX_free(context)
    return "sha256:" + out.map { String(format: "%02x", $0) }.joined()
  }

  @discardableResult
  public func blob(_ bytes: [UInt8]) throws -> String {
    let digest = Self.sha256(bytes)
    try Data(bytes).write(to: URL(fileURLWithPath: directory + "/blobs/sha256/" + digest.dropFirst(7)))
    return digest
  }

  /// Writes an image of one gzip layer holding the tar stream `tar`. Returns the manifest digest.
  @discardableResult
  public func image(gzipLayer tar: [UInt8]) throws -> String {
    try image(layers: [(MediaType.ociLayerGzip, Compress.gzip(tar), tar)])
  }

  /// Writes the image; `layers` are (media type, blob, tar). Returns the manifest digest.
  @discardableResult
  public func image(
    layers: [(mediaType: String, blob: [UInt8], tar: [UInt8])], tag: String = "latest",
    manifestDigestOverride: ((Int) -> String?)? = nil, diffIDOverride: ((Int) -> String?)? = nil
  ) throws -> String {
    var layerDescriptors: [[String: Any]] = []
    var diffIDs: [String] = []
    for (i, layer) in layers.enumerated() {
      let digest = try blob(layer.blob)
      layerDescriptors.append([
        "mediaType": layer.mediaType, "digest": manifestDigestOverride?(i) ?? digest, "size": layer.blob.count,
      ])
      diffIDs.append(diffIDOverride?(i) ?? Self.sha256(layer.tar))
    }
    let config: [String: Any] = [
      "architecture": "amd64", "os": "linux", "config": ["Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]],
      "rootfs": ["type": "layers", "diff_ids": diffIDs],
    ]
    let configBytes = Array(try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]))
    let manifest: [String: Any] = [
      "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "config": [
        "mediaType": "application/vnd.oci.image.config.v1+json", "digest": try blob(configBytes),
        "size": configBytes.count,
      ],
      "layers": layerDescriptors,
    ]
    let manifestBytes = Array(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]))
    let manifestDigest = try blob(manifestBytes)
    let index: [String: Any] = [
      "schemaVersion": 2,
      "manifests": [
        [
          "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifestDigest,
          "size": manifestBytes.count, "annotations": ["org.opencontainers.image.ref.name": tag],
        ]
      ],
    ]
    try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys]).write(
      to: URL(fileURLWithPath: directory + "/index.json"))
    return manifestDigest
  }
}
