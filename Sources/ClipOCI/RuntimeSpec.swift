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
    self = try readingJSON(bytes, what: what) { json in
      RuntimeState(
        ociVersion: try json.text("ociVersion"), id: try json.text("id"), status: try json.text("status"),
        pid: try json.optional("pid") { try $0.integer(Int32.self).orThrow("an integer") },
        bundle: try json.text("bundle"),
        annotations: try json.optional("annotations") { try $0.stringMap.orThrow("an object of strings") })
    }
  }
}

extension RuntimeConfig {
  /// Reads the parts clip needs from config.json `bytes`; errors say "malformed `what`: …".
  public init(json bytes: [UInt8], what: String) throws {
    self = try readingJSON(bytes, what: what) { json in
      RuntimeConfig(
        root: try json.optional("root") { root in
          Root(
            path: try root.text("path"), readonly: try root.optional("readonly") { try $0.bool.orThrow("a boolean") })
        },
        process: try json.optional("process") { process in
          Process(
            user: try process.optional("user") { user in
              User(
                uid: try user.member("uid") { try $0.integer(UInt32.self).orThrow("a user ID") },
                gid: try user.member("gid") { try $0.integer(UInt32.self).orThrow("a group ID") })
            },
            args: try process.optional("args") { args in
              try args.array.orThrow("an array").map { try $0.string.orThrow("strings") }
            })
        },
        annotations: try json.optional("annotations") { try $0.stringMap.orThrow("an object of strings") })
    }
  }
}

/// Parses `bytes` and reads a value from the document with `read`, every error reported as "malformed `what`: …"
/// naming the field.
func readingJSON<T>(_ bytes: [UInt8], what: String, _ read: (JSONValue) throws -> T) throws -> T {
  do {
    return try read(try JSONValue(parsing: bytes))
  } catch let error as ClipError {
    let field = error.context.reversed().joined(separator: ".")  // e.g. process.user.uid
    throw ClipError(.corrupt, "malformed \(what): " + (field.isEmpty ? "" : field + ": ") + error.message)
  }
}

extension JSONValue {
  /// Member `key`, read with `read`; missing or null is an error naming it.
  func member<T>(_ key: String, _ read: (JSONValue) throws -> T) throws -> T {
    guard let value = self[key], value != .null else { throw ClipError(.corrupt, "no \(key)") }
    return try ClipError.inContext(key) { try read(value) }
  }

  /// Member `key`, read with `read`, or nil if it is missing or null.
  func optional<T>(_ key: String, _ read: (JSONValue) throws -> T) throws -> T? {
    guard let value = self[key], value != .null else { return nil }
    return try ClipError.inContext(key) { try read(value) }
  }

  /// The string member `key`.
  func text(_ key: String) throws -> String { try member(key) { try $0.string.orThrow("a string") } }
}

extension Optional {
  /// The value, or an error saying the JSON value should have been `expected`.
  func orThrow(_ expected: String) throws -> Wrapped {
    guard let self else { throw ClipError(.corrupt, "not \(expected)") }
    return self
  }
}
