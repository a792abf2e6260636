#if canImport(Glibc)
  import Glibc
#endif

/// The one error type of clip: what went wrong, and where.
///
/// Errors are built where the problem is found and gain context (`layer sha256:…`, `offset 123`) as they travel up,
/// so the message the user finally sees says what failed and where, in one line.
public struct ClipError: Error, Sendable, CustomStringConvertible, Equatable {
  /// The kind of failure, for callers that must react differently (e.g. map to an errno or a gRPC status).
  public enum Code: String, Sendable {
    /// The caller asked for something malformed (a bad reference, flag or path).
    case invalidArgument
    /// The thing asked for does not exist (a tag, a path in the image, a blob).
    case notFound
    /// Bytes that should follow a format do not (tar, gzip, zstd, JSON, index file).
    case corrupt
    /// Bytes whose digest is not the one promised.
    case digestMismatch
    /// A valid input that clip does not handle (e.g. GNU sparse files).
    case unsupported
    /// An operating-system call failed.
    case system
    /// The network or a server failed in a way that may pass (connection refused or dropped, timeout, HTTP 5xx).
    case unavailable
    /// The server refused our credentials (HTTP 401/403).
    case unauthorized
  }

  /// The kind of failure.
  public var code: Code
  /// What went wrong, in words.
  public var message: String
  /// Where it went wrong, outermost last: e.g. `["offset 1024", "layer sha256:ab…"]`.
  public var context: [String]

  /// Creates an error of `code` with a message and optional context.
  public init(_ code: Code, _ message: String, context: [String] = []) {
    self.code = code
    self.message = message
    self.context = context
  }

  /// Returns this error with one more piece of context (outer scope) appended.
  public func adding(_ where: String) -> ClipError {
    var copy = self
    if !copy.context.contains(`where`) { copy.context.append(`where`) }
    return copy
  }

  /// The message and its context in one line.
  public var description: String {
    context.isEmpty ? message : "\(message) (\(context.joined(separator: ", ")))"
  }

  /// An error for a failed system call, reading `errno` now.
  public static func system(_ operation: String, _ path: String? = nil, errno code: Int32 = Glibc.errno) -> ClipError {
    let reason = String(cString: strerror(code))
    let subject = path.map { " \($0)" } ?? ""
    var error = ClipError(.system, "\(operation)\(subject): \(reason)")
    error.osErrno = code
    return error
  }

  /// The errno of a failed system call, when that is the cause.
  public var osErrno: Int32? = nil
}

extension ClipError {
  /// Runs `body`, adding `context` to any ClipError it throws.
  public static func inContext<T>(_ context: String, _ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as ClipError {
      throw error.adding(context)
    }
  }
}
