import ClipCore

// Source: https://github.com/opencontainers/image-spec/blob/main/config.md

/// The image configuration blob: platform, run defaults and the layers' diff IDs.
public struct ImageConfig: Codable, Sendable {
  /// CPU architecture.
  public var architecture: String?
  /// Operating system.
  public var os: String?
  /// CPU variant.
  public var variant: String?
  /// The defaults for running a container.
  public var config: RunConfig?
  /// The uncompressed layer digests.
  public var rootfs: RootFS

  /// The defaults for running a container (`config` in the JSON).
  public struct RunConfig: Codable, Sendable, Equatable {
    /// The user (name or uid[:gid]).
    public var user: String?
    /// Environment, `NAME=value`.
    public var env: [String]?
    /// The entrypoint.
    public var entrypoint: [String]?
    /// The default arguments.
    public var cmd: [String]?
    /// The working directory.
    public var workingDir: String?
    /// Labels.
    public var labels: [String: String]?

    enum CodingKeys: String, CodingKey {
      case user = "User"
      case env = "Env"
      case entrypoint = "Entrypoint"
      case cmd = "Cmd"
      case workingDir = "WorkingDir"
      case labels = "Labels"
    }

    /// Creates a run configuration.
    public init(
      user: String? = nil, env: [String]? = nil, entrypoint: [String]? = nil, cmd: [String]? = nil,
      workingDir: String? = nil, labels: [String: String]? = nil
    ) {
      self.user = user
      self.env = env
      self.entrypoint = entrypoint
      self.cmd = cmd
      self.workingDir = workingDir
      self.labels = labels
    }
  }

  /// The `rootfs` object.
  public struct RootFS: Codable, Sendable {
    /// Always `layers`.
    public var type: String
    /// One uncompressed digest per layer, base first.
    public var diffIDs: [Digest]

    /// The chain ID of each layer, the name runtimes give the snapshot of the layers up to it (image spec,
    /// config.md): the first is its diff ID, each next one `sha256(previous + " " + diffID)`.
    public var chainIDs: [Digest] {
      var chain: [Digest] = []
      for diffID in diffIDs {
        chain.append(chain.last.map { Digest.of(Array("\($0) \(diffID)".utf8)) } ?? diffID)
      }
      return chain
    }

    enum CodingKeys: String, CodingKey {
      case type
      case diffIDs = "diff_ids"
    }
  }
}
