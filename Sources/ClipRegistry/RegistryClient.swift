import ClipCore
import ClipOCI
import Foundation
import Synchronization

// Source: https://github.com/opencontainers/distribution-spec/blob/main/spec.md

/// A client for one registry speaking the OCI distribution protocol.
///
/// Every call goes through `send`, which adds credentials (Bearer tokens from the registry's challenge, cached per
/// scope until they expire; or Basic), follows redirects without forwarding `Authorization` to another host, retries
/// with backoff on connection failures, 429 and 5xx, and turns any other failure into one clear `ClipError`.
public final class RegistryClient: Sendable {
  /// `host[:port]` the API is served from.
  public let host: String
  /// `http` or `https`.
  public let scheme: String
  let transport: any HTTPTransport
  let credentials: Credentials?
  /// Attempts for a request that fails in a way that may pass.
  public let attempts: Int
  /// Seconds one attempt at a range read may take.
  public let rangeTimeout: Int
  private let auth = Mutex<AuthState>(AuthState())

  struct AuthState {
    var tokens: [String: (token: String, expires: Date)] = [:]
    var basic = false
  }

  /// Creates a client for `host`. Plain HTTP is used for loopback registries or when `plainHTTP` is set.
  public init(
    host: String, plainHTTP: Bool, transport: any HTTPTransport, credentials: Credentials?, attempts: Int = 4,
    rangeTimeout: Int = 120
  ) {
    self.rangeTimeout = rangeTimeout
    self.host = host
    self.scheme = plainHTTP ? "http" : "https"
    self.transport = transport
    self.credentials = credentials
    self.attempts = max(1, attempts)
  }

  /// The URL of an API path (`/v2/...`).
  func url(_ path: String) -> String { "\(scheme)://\(host)/v2/\(path)" }

  /// The token scope for pulling (and pushing) a repository.
  static func scope(_ repository: String, push: Bool = false) -> String {
    "repository:\(repository):" + (push ? "pull,push" : "pull")
  }

  // MARK: - Sending

  /// Sends a request with credentials, redirects and retries. The body of a 2xx answer goes to `body` (return false
  /// to stop early). A retry happens only before any body byte was delivered.
  @discardableResult
  func send(
    _ request: HTTPRequest, scope: String, expecting: Set<Int> = [200],
    body: (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool = { _, _ in true }
  ) throws -> HTTPResponseHead {
    var request = request
    var delivered = false
    var attempt = 0
    var authenticated = false
    var redirects = 0
    let originalHost = URL(string: request.url)?.host
    while true {
      attempt += 1
      var attemptRequest = request
      let sameHost = URL(string: request.url)?.host == originalHost
      if sameHost, let header = authorization(for: scope) { attemptRequest.headers.append(("Authorization", header)) }
      let head: HTTPResponseHead
      do {
        head = try transport.perform(attemptRequest) { head, bytes in
          delivered = true
          return try body(head, bytes)
        }
      } catch let error as ClipError where error.code == .unavailable && !delivered && attempt < attempts {
        backoff(attempt)
        continue
      }
      switch head.status {
      case 401 where !authenticated && sameHost:
        authenticated = true
        try authenticate(challenge: head["www-authenticate"], scope: scope)
        attempt -= 1
        continue
      case 301, 302, 303, 307, 308:
        redirects += 1
        guard redirects <= 5, let location = head["location"],
          let target = URL(string: location, relativeTo: URL(string: request.url))
        else { throw ClipError(.corrupt, "too many or malformed redirects from \(request.url)") }
        // Credentials for this registry must not reach another host (a blob store behind a redirect).
        request.url = target.absoluteString
        if head.status == 303 { request.method = "GET" }
        attempt -= 1
        continue
      case let status where [429, 500, 502, 503, 504].contains(status) && !delivered && attempt < attempts:
        backoff(attempt)
        continue
      default:
        break
      }
      guard expecting.contains(head.status) else { throw failure(head, request: request) }
      return head
    }
  }

  private func backoff(_ attempt: Int) {
    let delay = min(0.2 * pow(2.0, Double(attempt - 1)), 3.0)
    Thread.sleep(forTimeInterval: delay * Double.random(in: 0.75...1.25))
  }

  /// A clear error for an unexpected status, with the registry's own error message when it sent one.
  func failure(_ head: HTTPResponseHead, request: HTTPRequest) -> ClipError {
    struct Errors: Decodable {
      struct Entry: Decodable {
        var code: String?
        var message: String?
      }
      var errors: [Entry]?
    }
    let detail = (try? JSONDecoder().decode(Errors.self, from: Data(head.errorBody)))?.errors?.first
    let said = detail.map { ": " + [$0.code, $0.message].compactMap { $0 }.joined(separator: " ") } ?? ""
    let what = "\(request.method) \(request.url.replacingOccurrences(of: "\(scheme)://", with: ""))"
    switch head.status {
    case 401, 403:
      let hint = credentials == nil ? " (no credentials configured for \(host))" : " (credentials for \(host) rejected)"
      return ClipError(
        .unauthorized, "registry refused access, HTTP \(head.status) unauthorized\(said)\(hint): \(what)")
    case 404:
      return ClipError(.notFound, "not found, HTTP 404\(said): \(what)")
    case 500...599, 429:
      return ClipError(.unavailable, "registry failed, HTTP \(head.status)\(said), after \(attempts) attempts: \(what)")
    default:
      return ClipError(.corrupt, "unexpected HTTP \(head.status)\(said): \(what)")
    }
  }

  // MARK: - Authentication

  private func authorization(for scope: String) -> String? {
    auth.withLock { state in
      if let entry = state.tokens[scope], entry.expires > Date() { return "Bearer \(entry.token)" }
      if state.basic, let credentials { return credentials.basicHeader }
      return nil
    }
  }

  /// Answers a `WWW-Authenticate` challenge: fetches a Bearer token for `scope`, or switches to Basic.
  private func authenticate(challenge: String?, scope: String) throws {
    guard let challenge else {
      throw ClipError(.unauthorized, "registry \(host) answered 401 without a WWW-Authenticate challenge")
    }
    let (scheme, parameters) = Self.parseChallenge(challenge)
    switch scheme.lowercased() {
    case "basic":
      guard credentials != nil else {
        throw ClipError(.unauthorized, "registry \(host) requires a user name and password (HTTP 401 unauthorized)")
      }
      auth.withLock { $0.basic = true }
    case "bearer":
      guard let realm = parameters["realm"] else { throw ClipError(.corrupt, "Bearer challenge without a realm") }
      var components = URLComponents(string: realm)
      var items = components?.queryItems ?? []
      if let service = parameters["service"] { items.append(URLQueryItem(name: "service", value: service)) }
      items.append(URLQueryItem(name: "scope", value: parameters["scope"] ?? scope))
      components?.queryItems = items
      guard let tokenURL = components?.url?.absoluteString else { throw ClipError(.corrupt, "malformed token realm") }
      var request = HTTPRequest(url: tokenURL, timeout: 60)
      if let credentials { request.headers.append(("Authorization", credentials.basicHeader)) }
      var answer: [UInt8] = []
      let head = try transport.perform(request) { _, bytes in
        answer.append(contentsOf: bytes)
        return true
      }
      guard head.status == 200 else {
        let hint = credentials == nil ? "no credentials configured for \(host)" : "credentials for \(host) rejected"
        throw ClipError(
          .unauthorized, "token server refused access, HTTP \(head.status) unauthorized (\(hint)): \(realm)")
      }
      struct Token: Decodable {
        var token: String?
        var access_token: String?
        var expires_in: Int?
      }
      guard let token = try? JSONDecoder().decode(Token.self, from: Data(answer)),
        let value = token.token ?? token.access_token
      else { throw ClipError(.corrupt, "malformed answer from token server \(realm)") }
      let lifetime = Double(max(token.expires_in ?? 60, 10)) - 5
      auth.withLock { $0.tokens[scope] = (value, Date().addingTimeInterval(lifetime)) }
    default:
      throw ClipError(.unsupported, "registry \(host) asks for \(scheme) authentication, which clip does not speak")
    }
  }

  /// Splits `Bearer realm="…",service="…",scope="…"` into the scheme and its parameters.
  static func parseChallenge(_ text: String) -> (String, [String: String]) {
    let trimmed = text.trimmingASCIIWhitespace
    guard let space = trimmed.firstIndex(of: " ") else { return (trimmed, [:]) }
    var parameters: [String: String] = [:]
    var rest = trimmed[trimmed.index(after: space)...]
    while !rest.isEmpty {
      rest = rest.drop { $0 == " " || $0 == "," }
      guard let equals = rest.firstIndex(of: "=") else { break }
      let key = rest[..<equals].trimmingASCIIWhitespace.lowercased()
      rest = rest[rest.index(after: equals)...]
      var value = ""
      if rest.first == "\"" {
        rest = rest.dropFirst()
        let end = rest.firstIndex(of: "\"") ?? rest.endIndex
        value = String(rest[..<end])
        rest = end < rest.endIndex ? rest[rest.index(after: end)...] : rest[rest.endIndex...]
      } else {
        let end = rest.firstIndex(of: ",") ?? rest.endIndex
        value = String(rest[..<end])
        rest = rest[end...]
      }
      parameters[key] = value
    }
    return (String(trimmed[..<space]), parameters)
  }
}
