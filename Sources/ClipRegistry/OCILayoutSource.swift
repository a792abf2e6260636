import ClipCore
import ClipOCI
import Foundation

// Source: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

/// An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`).
public struct OCILayoutSource: ImageSource {
  /// The layout directory (absolute).
  public let directory: String
  /// The tag to pick from index.json (`org.opencontainers.image.ref.name`); nil picks the only image.
  public let tag: String?

  /// Parses `DIR[:TAG]`, skopeo's `oci:` syntax (the first `:` ends the directory).
  public init(reference: String) throws {
    let parts = reference.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
    guard let first = parts.first, !first.isEmpty else {
      throw ClipError(.invalidArgument, "oci: source needs a directory (oci:DIR[:TAG])")
    }
    let path = String(first)
    directory = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    tag = parts.count == 2 && !parts[1].isEmpty ? String(parts[1]) : nil
    guard FileManager.default.fileExists(atPath: directory + "/index.json") else {
      throw ClipError(.notFound, "\(directory) is not an OCI image layout (no index.json)")
    }
  }

  public var name: String { "oci:" + directory + (tag.map { ":" + $0 } ?? "") }

  func blobPath(_ digest: Digest) -> String { directory + "/blobs/sha256/" + digest.hex }

  public func resolve(platform: Platform) throws -> ResolvedImage {
    let indexBytes = try File.readAll(directory + "/index.json")
    let index = try decodeJSON(Index.self, from: indexBytes, what: "\(directory)/index.json")
    let candidates =
      tag.map { tag in index.manifests.filter { $0.annotations?[Descriptor.refNameAnnotation] == tag } }
      ?? index.manifests
    let descriptor: Descriptor
    if candidates.count == 1 {
      descriptor = candidates[0]
    } else if candidates.isEmpty {
      let tags = index.manifests.compactMap { $0.annotations?[Descriptor.refNameAnnotation] }
      throw ClipError(
        .notFound, "no image tagged '\(tag ?? "")' in \(directory) (tags: \(tags.joined(separator: ", ")))")
    } else if let match = candidates.first(where: { $0.platform.map(platform.matches) ?? false }) {
      descriptor = match
    } else {
      throw ClipError(.invalidArgument, "\(directory) holds several images: name one with oci:DIR:TAG")
    }
    let fetch = { (d: Descriptor) throws -> [UInt8] in
      let bytes = try self.readAll(d.digest)
      try verify(bytes, against: d, what: "blob")
      return bytes
    }
    return try resolve(
      manifestBytes: try fetch(descriptor), digest: descriptor.digest, platform: platform, fetch: fetch)
  }

  private func readAll(_ digest: Digest) throws -> [UInt8] {
    do {
      return try File.readAll(blobPath(digest))
    } catch let error as ClipError where error.osErrno == ENOENT {
      throw ClipError(.notFound, "blob \(digest) is missing from \(directory)")
    }
  }

  private func open(_ digest: Digest) throws -> File {
    do {
      return try File(path: blobPath(digest))
    } catch let error as ClipError where error.osErrno == ENOENT {
      throw ClipError(.notFound, "blob \(digest) is missing from \(directory)")
    }
  }

  public func withBlobStream<T>(
    _ digest: Digest, _ body: (@escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws -> T
  ) throws -> T {
    let file = try open(digest)
    return try body { try file.read(into: $0) }
  }

  public func read(_ digest: Digest, range: Range<UInt64>) throws -> [UInt8] {
    let file = try open(digest)
    let size = try file.size()
    guard range.upperBound <= size else {
      throw ClipError(
        .corrupt, "blob \(digest) is \(size) bytes; cannot read \(range.lowerBound)..<\(range.upperBound)")
    }
    return try file.read(count: Int(range.count), at: range.lowerBound)
  }
}
