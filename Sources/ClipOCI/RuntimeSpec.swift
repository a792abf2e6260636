import ClipCore

// Source: https://github.com/opencontainers/runtime-spec/blob/main/runtime.md (state) and config.md (config.json).

/// The state an OCI runtime hands a hook on its standard input.
public struct RuntimeState: Codable, Sendable, Equatable {
  /// The runtime-spec version.
  public var ociVersion: String
  /// The container ID, unique on the host.
  public var id: String
  /// `creating`, `created`, `running` or `stopped`.
  public var status: String
  /// The container's init process (absent or 0 once it is gone).
  public var pid: Int32?
  /// The absolute path of the bundle directory.
  public var bundle: String
  /// The annotations of config.json.
  public var annotations: [String: String]?

  /// Creates a state value (for tests and tools).
  public init(
    ociVersion: String = "1.0.2", id: String, status: String, pid: Int32?, bundle: String,
    annotations: [String: String]? = nil
  ) {
    self.ociVersion = ociVersion
    self.id = id
    self.status = status
    self.pid = pid
    self.bundle = bundle
    self.annotations = annotations
  }
}

/// What clip reads of a bundle's config.json (the runtime reads the rest).
public struct RuntimeConfig: Codable, Sendable, Equatable {
  /// The root filesystem.
  public var root: Root?
  /// The process to run.
  public var process: Process?
  /// Arbitrary metadata; clip's annotations name the image.
  public var annotations: [String: String]?

  /// `root`: where the root filesystem goes and whether it is read-only.
  public struct Root: Codable, Sendable, Equatable {
    /// The path, relative to the bundle or absolute.
    public var path: String
    /// Whether the root filesystem is read-only for the container.
    public var readonly: Bool?
  }

  /// `process`: only the user and the command matter to clip.
  public struct Process: Codable, Sendable, Equatable {
    /// The user the process runs as.
    public var user: User?
    /// The command and its arguments.
    public var args: [String]?
  }

  /// `process.user`.
  public struct User: Codable, Sendable, Equatable {
    /// The user ID.
    public var uid: UInt32
    /// The group ID.
    public var gid: UInt32
  }

  /// The absolute root filesystem path for a bundle at `bundle`.
  public func rootPath(bundle: String) throws -> String {
    guard let path = root?.path, !path.isEmpty else {
      throw ClipError(.invalidArgument, "config.json has no root.path")
    }
    return path.hasPrefix("/") ? path : bundle + "/" + path
  }
}

// MARK: - Reading without Codable (a hook start: `JSONValue`)

extension RuntimeState {
  /// Reads the state from JSON `bytes`; errors say "malformed `what`: …".
  public init(json bytes: [UInt8], what: String) throws {
    self = try JSONValue.read(bytes, what: what) { json in
      RuntimeState(
        ociVersion: try json.stringMember("ociVersion"), id: try json.stringMember("id"),
        status: try json.stringMember("status"),
        pid: try json.optionalMember("pid") { try $0.read(as: "an integer") { $0.integer(Int32.self) } },
        bundle: try json.stringMember("bundle"),
        annotations: try json.optionalMember("annotations") { try $0.read(as: "an object of strings") { $0.stringMap } }
      )
    }
  }
}

extension RuntimeConfig {
  /// Reads the parts clip needs from config.json `bytes`; errors say "malformed `what`: …".
  public init(json bytes: [UInt8], what: String) throws {
    self = try JSONValue.read(bytes, what: what) { json in
      RuntimeConfig(
        root: try json.optionalMember("root") { root in
          Root(
            path: try root.stringMember("path"),
            readonly: try root.optionalMember("readonly") { try $0.read(as: "a boolean") { $0.bool } })
        },
        process: try json.optionalMember("process") { process in
          Process(
            user: try process.optionalMember("user") { user in
              User(
                uid: try user.member("uid") { try $0.read(as: "a user ID") { $0.integer(UInt32.self) } },
                gid: try user.member("gid") { try $0.read(as: "a group ID") { $0.integer(UInt32.self) } })
            },
            args: try process.optionalMember("args") { args in
              try args.read(as: "an array") { $0.array }.map { try $0.read(as: "strings") { $0.string } }
            })
        },
        annotations: try json.optionalMember("annotations") { try $0.read(as: "an object of strings") { $0.stringMap } }
      )
    }
  }
}
