import CClipShims
import CCurl
import ClipCore
import Foundation

/// The HTTP transport on libcurl: connections are kept alive in a pool of easy handles, at most `maxConnections`
/// requests run at once, connecting has a timeout and a transfer that stalls is aborted.
///
/// ## Concurrency model
/// Safe to share between threads: each request takes a handle from the pool (waiting while all are busy) and uses
/// it alone; the pool is guarded by `condition`.
public final class CurlTransport: HTTPTransport, @unchecked Sendable {
  private let condition = NSCondition()
  private var idle: [UnsafeMutableRawPointer] = []
  private var busy = 0
  /// Requests in flight at most.
  public let maxConnections: Int
  /// Seconds allowed to connect.
  public let connectTimeout: Int
  /// Seconds without a byte before a transfer counts as stalled.
  public let stallTimeout: Int

  /// Creates a transport.
  public init(maxConnections: Int = 8, connectTimeout: Int = 10, stallTimeout: Int = 30) {
    self.maxConnections = maxConnections
    self.connectTimeout = connectTimeout
    self.stallTimeout = stallTimeout
  }

  deinit {
    for handle in idle { clip_curl_easy_cleanup(handle) }
  }

  /// Loads libcurl and the libraries it needs (tens of them, read from disk on a cold start) on a background thread,
  /// so that a request made later does not wait for that; one made meanwhile waits for the load to finish. Exiting
  /// meanwhile is safe (the exit waits for the load). Best effort: when no thread can start, requests load libcurl.
  public static func loadInBackground() {
    _ = clip_curl_load_in_background()
  }

  private func acquire() throws -> UnsafeMutableRawPointer {
    if let problem = clip_curl_load() { throw ClipError(.unsupported, String(cString: problem)) }
    condition.lock()
    defer { condition.unlock() }
    while idle.isEmpty && busy >= maxConnections { condition.wait() }
    busy += 1
    if let handle = idle.popLast() { return handle }
    guard let handle = clip_curl_easy_init() else {
      busy -= 1
      throw ClipError(.system, "libcurl: cannot create a handle")
    }
    return handle
  }

  private func release(_ handle: UnsafeMutableRawPointer) {
    condition.lock()
    busy -= 1
    idle.append(handle)
    condition.signal()
    condition.unlock()
  }

  public func perform(_ request: HTTPRequest, body: (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool) throws
    -> HTTPResponseHead
  {
    let handle = try acquire()
    defer { release(handle) }
    clip_curl_easy_reset(handle)
    return try withoutActuallyEscaping(body) { body in
      let exchange = Exchange(body: body)
      let context = Unmanaged.passUnretained(exchange).toOpaque()
      var headerList: UnsafeMutablePointer<curl_slist>? = nil
      defer { clip_curl_slist_free_all(headerList) }
      for (name, value) in request.headers { headerList = clip_curl_slist_append(headerList, "\(name): \(value)") }
      // curl would add "Expect: 100-continue" to uploads: one round trip more for nothing.
      headerList = clip_curl_slist_append(headerList, "Expect:")

      clip_curl_set_string(handle, CURLOPT_URL, request.url)
      clip_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
      clip_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeout)
      clip_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
      clip_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, stallTimeout)
      clip_curl_set_long(handle, CURLOPT_TIMEOUT, request.timeout)
      clip_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
      clip_curl_set_long(handle, CURLOPT_BUFFERSIZE, 512 * 1024)
      clip_curl_set_long(handle, CURLOPT_FOLLOWLOCATION, 0)
      clip_curl_set_pointer(handle, CURLOPT_HTTPHEADER, headerList)
      clip_curl_set_callback(handle, CURLOPT_HEADERFUNCTION, curlHeaderCallback)
      clip_curl_set_pointer(handle, CURLOPT_HEADERDATA, context)
      clip_curl_set_callback(handle, CURLOPT_WRITEFUNCTION, curlWriteCallback)
      clip_curl_set_pointer(handle, CURLOPT_WRITEDATA, context)
      switch request.method {
      case "GET": break
      case "HEAD": clip_curl_set_long(handle, CURLOPT_NOBODY, 1)
      default: clip_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, request.method)
      }
      // The upload is copied into memory that stays put for the whole transfer (libcurl keeps the pointer).
      let payload = request.body ?? (request.method == "GET" || request.method == "HEAD" ? nil : [])
      let upload = UnsafeMutableRawBufferPointer.allocate(byteCount: max(payload?.count ?? 0, 1), alignment: 16)
      defer { upload.deallocate() }
      do {
        if let payload {
          payload.withUnsafeBytes { upload.copyMemory(from: $0) }
          clip_curl_set_pointer(handle, CURLOPT_POSTFIELDS, upload.baseAddress)
          clip_curl_set_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(payload.count))
        }
        let code = clip_curl_easy_perform(handle)
        if let error = exchange.error { throw error }
        if code != CURLE_OK && !(code == CURLE_WRITE_ERROR && exchange.stopped) {
          let reason = String(cString: clip_curl_easy_strerror(code))
          throw ClipError(.unavailable, "\(request.method) \(request.url): \(reason)")
        }
        var status = 0
        clip_curl_get_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponseHead(status: status, headers: exchange.headers, errorBody: exchange.errorBody)
      }
    }
  }
}

/// The state of one transfer, reached from libcurl's callbacks through their context pointer.
private final class Exchange {
  let body: (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool
  var status = 0
  var headers: [String: String] = [:]
  var errorBody: [UInt8] = []
  var stopped = false
  var error: (any Error)?

  private var head: HTTPResponseHead?

  init(body: @escaping (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool) { self.body = body }

  func header(_ line: String) {
    let trimmed = line.trimmingASCIIWhitespace
    if trimmed.hasPrefix("HTTP/") {  // a new response (after 100 Continue, say): start over
      headers = [:]
      head = nil
      status = Int(trimmed.split(separator: " ").dropFirst().first ?? "") ?? 0
      return
    }
    guard let colon = trimmed.firstIndex(of: ":") else { return }
    let name = trimmed[..<colon].lowercased()
    headers[name] = trimmed[trimmed.index(after: colon)...].trimmingASCIIWhitespace
  }

  func data(_ bytes: UnsafeRawBufferPointer) -> Bool {
    guard (200..<300).contains(status) else {
      errorBody.append(contentsOf: bytes.prefix(max(0, 65536 - errorBody.count)))
      return true
    }
    let current = head ?? HTTPResponseHead(status: status, headers: headers)
    head = current
    do {
      if try body(current, bytes) { return true }
      stopped = true
    } catch {
      self.error = error
    }
    return false
  }
}

private func curlHeaderCallback(
  _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
  guard let data, let context else { return 0 }
  let exchange = Unmanaged<Exchange>.fromOpaque(context).takeUnretainedValue()
  let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
  exchange.header(String(decoding: bytes, as: UTF8.self))
  return size * count
}

private func curlWriteCallback(
  _ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?
) -> Int {
  guard let data, let context else { return 0 }
  let exchange = Unmanaged<Exchange>.fromOpaque(context).takeUnretainedValue()
  return exchange.data(UnsafeRawBufferPointer(start: data, count: size * count)) ? size * count : 0
}
