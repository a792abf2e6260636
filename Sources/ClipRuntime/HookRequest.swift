import ClipCore
import ClipOCI
import ClipRegistry
import Foundation

/// The annotations of config.json that ask clip for a container's root filesystem (specs/hook.md).
public enum Annotation {
  /// The image: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`, `REPO[:TAG]` or `oci:DIR[:TAG]`. Required.
  public static let image = "org.clip.image"
  /// An index file of the image to use instead of finding or making one.
  public static let index = "org.clip.index"
  /// The sha256 digest the index file must have.
  public static let indexDigest = "org.clip.index.digest"
  /// The platform to pick from a multi-platform image: `OS/ARCH[/VARIANT]`.
  public static let platform = "org.clip.platform"
  /// `auto` (default: the profile published with the image's index, if any), `none`, `all`, or an absolute path of a
  /// prefetch profile.
  public static let prefetch = "org.clip.prefetch"
  /// An absolute path of a Docker config.json holding the registry's credentials.
  public static let authFile = "org.clip.authfile"
  /// `true` to speak plain HTTP to the registry (always so for loopback registries).
  public static let plainHTTP = "org.clip.plain-http"
  /// Seconds to keep the image mounted after its last container goes.
  public static let keepWarm = "org.clip.keep-warm"
  /// `missing` (default): a reference indexed before is not resolved again; `always`: resolve it at every start.
  public static let pull = "org.clip.pull"
}

/// What a container asks of clip, read from its annotations.
public struct ImageRequest: Sendable, Equatable {
  /// The image source, as `clip index` takes it.
  public var reference: String
  /// An index file to use.
  public var indexPath: String?
  /// The digest the index file must have.
  public var indexDigest: Digest?
  /// The platform; nil for this machine's.
  public var platform: Platform?
  /// `auto`, `none`, `all` or a profile path.
  public var prefetch: String
  /// A Docker config.json with credentials.
  public var authFile: String?
  /// Plain HTTP to the registry.
  public var plainHTTP: Bool
  /// Seconds to keep the image mounted once unused; nil for the hook's default.
  public var keepWarm: Int?
  /// Resolve the reference at the registry at every start, even when it was indexed before.
  public var pullAlways: Bool
  /// The image's manifest digest, when the caller knows it (the snapshotter's labels, or the digest of a registry
  /// reference pinned as `REPO[:TAG]@DIGEST`, which `clip bundle` writes): its cached or published index is then used
  /// without resolving the reference. Not an annotation of its own.
  public var manifestDigest: Digest?
  /// The blobs published for that manifest (index, profile), when the caller found them (`clip pull`'s labels). Not an
  /// annotation.
  public var published: PublishedIndex.Blobs?

  /// Reads the request from `annotations`; nil when they do not name an image (the container is not clip's).
  public init?(annotations: [String: String]) throws {
    guard let reference = annotations[Annotation.image] else { return nil }
    let trimmed = reference.trimmingASCIIWhitespace
    guard !trimmed.isEmpty else { throw ClipError(.invalidArgument, "annotation \(Annotation.image) is empty") }
    self.reference = trimmed
    if isRegistrySource(trimmed) { manifestDigest = try? ImageReference(trimmed).digest }
    indexPath = try annotations[Annotation.index].map { try Self.absolutePath($0, Annotation.index) }
    indexDigest = try annotations[Annotation.indexDigest].map { text in
      try ClipError.inContext("annotation \(Annotation.indexDigest)") { try Digest(text) }
    }
    platform = try annotations[Annotation.platform].map { text in
      try ClipError.inContext("annotation \(Annotation.platform)") { try Platform(parsing: text) }
    }
    let prefetch = annotations[Annotation.prefetch] ?? "auto"
    if !["auto", "none", "all"].contains(prefetch) { _ = try Self.absolutePath(prefetch, Annotation.prefetch) }
    self.prefetch = prefetch
    authFile = try annotations[Annotation.authFile].map { try Self.absolutePath($0, Annotation.authFile) }
    switch annotations[Annotation.plainHTTP] {
    case nil, "false": plainHTTP = false
    case "true": plainHTTP = true
    case let other?:
      throw ClipError(.invalidArgument, "annotation \(Annotation.plainHTTP): '\(other)' is neither true nor false")
    }
    switch annotations[Annotation.pull] {
    case nil, "missing": pullAlways = false
    case "always": pullAlways = true
    case let other?:
      throw ClipError(.invalidArgument, "annotation \(Annotation.pull): '\(other)' is neither missing nor always")
    }
    keepWarm = try annotations[Annotation.keepWarm].map { text in
      guard let seconds = Int(text), seconds >= 0 else {
        throw ClipError(.invalidArgument, "annotation \(Annotation.keepWarm): '\(text)' is not a number of seconds")
      }
      return seconds
    }
  }

  private static func absolutePath(_ text: String, _ annotation: String) throws -> String {
    guard text.hasPrefix("/") else {
      throw ClipError(.invalidArgument, "annotation \(annotation): '\(text)' is not an absolute path")
    }
    return text
  }
}
