import ClipCore
import Foundation

/// A user name and password (or token) for a registry. Never logged, never written to an index.
public struct Credentials: Sendable, Equatable {
  /// The user name.
  public var username: String
  /// The password or token.
  public var password: String

  /// Creates credentials.
  public init(username: String, password: String) {
    self.username = username
    self.password = password
  }

  /// The value of a Basic `Authorization` header.
  public var basicHeader: String { "Basic " + Data("\(username):\(password)".utf8).base64EncodedString() }
}

/// Registry credentials from Docker's client configuration (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`): `auths` entries, and `credHelpers` / `credsStore` through `docker-credential-NAME`.
public struct CredentialStore: Sendable {
  /// The config.json path.
  public let path: String

  /// Uses `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
  public init(path: String? = nil) {
    let environment = ProcessInfo.processInfo.environment
    let directory = environment["DOCKER_CONFIG"] ?? ((environment["HOME"] ?? "/root") + "/.docker")
    self.path = path ?? directory + "/config.json"
  }

  struct Config: Decodable {
    struct Auth: Decodable {
      var auth: String?
      var username: String?
      var password: String?
    }
    var auths: [String: Auth]?
    var credHelpers: [String: String]?
    var credsStore: String?
  }

  /// The credentials for `registry` (`host[:port]`, `docker.io` for Docker Hub), or nil if none are configured.
  public func credentials(for registry: String) throws -> Credentials? {
    guard let bytes = try? File.readAll(path) else { return nil }
    let config = try decodeJSONFile(bytes)
    let keys =
      registry == "docker.io"
      ? ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
      : [registry, "https://\(registry)", "http://\(registry)", "https://\(registry)/v1/"]
    if let helper = keys.lazy.compactMap({ config.credHelpers?[$0] }).first {
      return try Self.runHelper(helper, server: keys[0])
    }
    for key in keys {
      guard let entry = config.auths?[key] else { continue }
      if let auth = entry.auth, let decoded = Data(base64Encoded: auth),
        let text = String(data: decoded, encoding: .utf8),
        let colon = text.firstIndex(of: ":")
      {
        return Credentials(username: String(text[..<colon]), password: String(text[text.index(after: colon)...]))
      }
      if let username = entry.username, let password = entry.password {
        return Credentials(username: username, password: password)
      }
    }
    if let store = config.credsStore { return try Self.runHelper(store, server: keys[0]) }
    return nil
  }

  private func decodeJSONFile(_ bytes: [UInt8]) throws -> Config {
    do {
      return try JSONDecoder().decode(Config.self, from: Data(bytes))
    } catch {
      throw ClipError(.invalidArgument, "malformed Docker config \(path)")
    }
  }

  /// Runs `docker-credential-NAME get`, the credential-helper protocol: the server on stdin, JSON on stdout.
  static func runHelper(_ name: String, server: String) throws -> Credentials? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["docker-credential-\(name)", "get"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    do {
      try process.run()
    } catch {
      throw ClipError(.notFound, "credential helper docker-credential-\(name) cannot be run")
    }
    input.fileHandleForWriting.write(Data(server.utf8))
    try? input.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { return nil }  // "credentials not found" exits non-zero
    struct Answer: Decodable {
      var Username: String
      var Secret: String
    }
    guard let answer = try? JSONDecoder().decode(Answer.self, from: data) else {
      throw ClipError(.corrupt, "credential helper docker-credential-\(name) gave a malformed answer")
    }
    return Credentials(username: answer.Username, password: answer.Secret)
  }
}
