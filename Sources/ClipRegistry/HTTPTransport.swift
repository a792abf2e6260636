import ClipCore

/// An HTTP request as the registry client builds it.
public struct HTTPRequest: Sendable {
  /// `GET`, `HEAD`, `PUT`, `POST`, `PATCH`, `DELETE`.
  public var method: String
  /// The absolute URL.
  public var url: String
  /// Request headers, in order.
  public var headers: [(name: String, value: String)]
  /// The request body, if any.
  public var body: [UInt8]?
  /// Give up if the whole exchange takes longer than this many seconds (0: no limit, only stall detection).
  public var timeout: Int

  /// Creates a request.
  public init(
    method: String = "GET", url: String, headers: [(name: String, value: String)] = [], body: [UInt8]? = nil,
    timeout: Int = 120
  ) {
    self.method = method
    self.url = url
    self.headers = headers
    self.body = body
    self.timeout = timeout
  }

  /// The value of a header (case-insensitive), if set.
  public func header(_ name: String) -> String? {
    headers.first { $0.name.lowercased() == name.lowercased() }?.value
  }
}

/// The status line and headers of a response.
public struct HTTPResponseHead: Sendable {
  /// The status code.
  public var status: Int
  /// Headers with lowercased names (the last value wins).
  public var headers: [String: String]
  /// A response body that was not handed to the body sink (error statuses): at most 64 KiB, for messages.
  public var errorBody: [UInt8]

  /// Creates a response head.
  public init(status: Int, headers: [String: String], errorBody: [UInt8] = []) {
    self.status = status
    self.headers = headers
    self.errorBody = errorBody
  }

  /// A header by (case-insensitive) name.
  public subscript(_ name: String) -> String? { headers[name.lowercased()] }
}

/// Moves HTTP requests: libcurl in production, a fake in unit tests.
///
/// `perform` blocks the calling thread. The body of a 2xx response is handed to `body` in pieces as it arrives,
/// with the response's status and headers;
/// returning false from `body` stops the transfer early (the call then returns normally). Other statuses' bodies are
/// kept in `errorBody`. Transport failures throw `ClipError` with code `.unavailable`.
public protocol HTTPTransport: Sendable {
  /// Performs one request (no redirects are followed).
  func perform(_ request: HTTPRequest, body: (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool) throws
    -> HTTPResponseHead
}
