import ClipCore

// Source: https://github.com/distribution/reference/blob/main/reference.go (grammar and Docker Hub normalisation)

/// A reference to an image in a registry, as users write it: `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]` or a bare
/// `REPO[:TAG]` (Docker Hub: `busybox` is `docker.io/library/busybox:latest`). Validated on construction.
public struct ImageReference: Sendable, Equatable, CustomStringConvertible {
  /// The registry as written (`docker.io` for Docker Hub), with port.
  public let registry: String
  /// The repository path, e.g. `library/busybox`.
  public let repository: String
  /// The tag, if given.
  public let tag: String?
  /// The manifest digest, if given.
  public let digest: Digest?

  /// Parses a reference (with or without the `docker://` prefix).
  public init(_ text: String) throws {
    var rest = Substring(text.hasPrefix("docker://") ? String(text.dropFirst(9)) : text)
    func fail(_ why: String) -> ClipError {
      ClipError(.invalidArgument, "invalid image reference '\(text)': \(why)")
    }
    var digest: Digest? = nil
    if let at = rest.firstIndex(of: "@") {
      digest = try Digest(String(rest[rest.index(after: at)...]))
      rest = rest[..<at]
    }
    var tag: String? = nil
    if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
      tag = String(rest[rest.index(after: colon)...])
      rest = rest[..<colon]
    }
    var parts = rest.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
    guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { throw fail("empty path component") }
    var registry = "docker.io"
    if parts.count > 1, parts[0].contains(".") || parts[0].contains(":") || parts[0] == "localhost" {
      registry = parts.removeFirst()
    }
    if registry == "docker.io" || registry == "index.docker.io" {
      registry = "docker.io"
      if parts.count == 1 { parts.insert("library", at: 0) }
    }
    for part in parts where !Self.isValidComponent(part) {
      throw fail("repository component '\(part)' must be lowercase letters, digits and separators")
    }
    if let tag, !Self.isValidTag(tag) { throw fail("tag '\(tag)' is not valid") }
    self.registry = registry
    self.repository = parts.joined(separator: "/")
    self.tag = tag ?? (digest == nil ? "latest" : nil)
    self.digest = digest
  }

  /// The same reference pinned to `digest` (the tag, if any, kept for the reader): `REPO:TAG@DIGEST` names the
  /// manifest `DIGEST`, whatever the tag names now.
  public func pinned(to digest: Digest) -> ImageReference {
    ImageReference(registry: registry, repository: repository, tag: tag, digest: digest)
  }

  private init(registry: String, repository: String, tag: String?, digest: Digest?) {
    self.registry = registry
    self.repository = repository
    self.tag = tag
    self.digest = digest
  }

  /// The host the registry API is served from (Docker Hub's differs from its name).
  public var apiHost: String { registry == "docker.io" ? "registry-1.docker.io" : registry }

  /// What to ask the manifests endpoint for: the digest if given, else the tag.
  public var reference: String { digest?.description ?? tag ?? "latest" }

  /// True for registries on this machine, which clip talks to over plain HTTP.
  public var isLoopback: Bool {
    let host =
      registry.hasPrefix("[")
      ? String(registry.prefix { $0 != "]" }.dropFirst()) : String(registry.prefix { $0 != ":" })
    return host == "localhost" || host.hasPrefix("127.") || host == "::1"
  }

  /// `docker://REGISTRY/REPO[:TAG][@DIGEST]`.
  public var description: String {
    "docker://\(registry)/\(repository)" + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0.description } ?? "")
  }

  static func isValidComponent(_ part: String) -> Bool {
    let bytes = Array(part.utf8)
    func alnum(_ b: UInt8) -> Bool { (0x61...0x7a).contains(b) || (0x30...0x39).contains(b) }
    guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last) else { return false }
    return bytes.allSatisfy {
      alnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
    }
  }

  static func isValidTag(_ tag: String) -> Bool {
    let bytes = Array(tag.utf8)
    func word(_ b: UInt8) -> Bool {
      (0x61...0x7a).contains(b) || (0x41...0x5a).contains(b) || (0x30...0x39).contains(b) || b == UInt8(ascii: "_")
    }
    guard let first = bytes.first, word(first), bytes.count <= 128 else { return false }
    return bytes.allSatisfy { word($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
  }
}
