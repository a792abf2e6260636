import ClipCore

// Source: https://github.com/opencontainers/image-spec/blob/main/image-index.md#platform-variants

/// The platform an image runs on: `os/architecture[/variant]`.
public struct Platform: Codable, Sendable, Hashable, CustomStringConvertible {
  /// Operating system, e.g. `linux`.
  public var os: String
  /// CPU architecture in Go's naming, e.g. `amd64`, `arm64`.
  public var architecture: String
  /// CPU variant, e.g. `v8`.
  public var variant: String?

  enum CodingKeys: String, CodingKey {
    case os
    case architecture
    case variant
  }

  /// Creates a platform.
  public init(os: String, architecture: String, variant: String? = nil) {
    self.os = os
    self.architecture = architecture
    self.variant = variant
  }

  /// Parses `os/arch[/variant]`.
  public init(parsing text: String) throws {
    let parts = text.split(separator: "/").map(String.init)
    guard parts.count == 2 || parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else {
      throw ClipError(.invalidArgument, "malformed platform '\(text)' (expected OS/ARCH[/VARIANT])")
    }
    self.init(os: parts[0], architecture: parts[1], variant: parts.count == 3 ? parts[2] : nil)
  }

  /// The platform of this machine.
  public static var current: Platform {
    #if arch(x86_64)
      Platform(os: "linux", architecture: "amd64")
    #elseif arch(arm64)
      Platform(os: "linux", architecture: "arm64")
    #else
      Platform(os: "linux", architecture: "unknown")
    #endif
  }

  /// True if an image for `other` can serve a request for `self` (variant only compared when asked for).
  public func matches(_ other: Platform) -> Bool {
    os == other.os && architecture == other.architecture && (variant == nil || variant == other.variant)
  }

  /// `os/arch[/variant]`.
  public var description: String { [os, architecture, variant].compactMap { $0 }.joined(separator: "/") }
}
