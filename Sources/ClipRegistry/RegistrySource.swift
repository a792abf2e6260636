import ClipCore
import ClipOCI
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// An image in a registry, as an `ImageSource`: manifests and configs fetched and verified, blobs streamed (resuming
/// after dropped connections) or read by range.
public struct RegistrySource: ImageSource {
  /// The image reference.
  public let reference: ImageReference
  /// The client for its registry.
  public let client: RegistryClient

  /// Opens `reference` with credentials from Docker's config, plain HTTP for loopback hosts or when asked.
  /// With `readTimeout`, a range read gives up after about that many seconds in all (two attempts).
  public init(
    reference: ImageReference, plainHTTP: Bool = false, readTimeout: Int? = nil,
    credentials: CredentialStore = CredentialStore()
  ) throws {
    let transport: CurlTransport
    if let readTimeout {
      let attempt = max(readTimeout / 2, 1)
      // A mount's reads share the pool with its fetches ahead (warming, read-ahead, profiles, each several
      // requests wide): room for both, so that a read does not queue behind them.
      transport = CurlTransport(maxConnections: 24, connectTimeout: min(5, attempt), stallTimeout: attempt)
    } else {
      transport = CurlTransport()
    }
    try self.init(
      reference: reference, plainHTTP: plainHTTP, transport: transport, credentials: credentials,
      attempts: readTimeout == nil ? 4 : 2, rangeTimeout: readTimeout.map { max($0 / 2, 1) } ?? 120)
  }

  /// Opens `reference` over a given transport.
  public init(
    reference: ImageReference, plainHTTP: Bool, transport: any HTTPTransport, credentials: CredentialStore,
    attempts: Int = 4, rangeTimeout: Int = 120
  ) throws {
    self.reference = reference
    self.client = RegistryClient(
      host: reference.apiHost, plainHTTP: plainHTTP || reference.isLoopback, transport: transport,
      credentials: try credentials.credentials(for: reference.registry), attempts: attempts,
      rangeTimeout: rangeTimeout)
  }

  public var name: String { reference.description }

  public func resolve(platform: Platform) throws -> ResolvedImage {
    try resolve(platform: platform, chosen: { _ in })
  }

  /// Resolves like `resolve(platform:)`; `chosen` learns the image manifest's digest as soon as it is known (before
  /// its config is fetched), so that a caller can start work that needs only the digest.
  public func resolve(platform: Platform, chosen: (Digest) -> Void) throws -> ResolvedImage {
    let repository = reference.repository
    let top = try ClipError.inContext(name) { try client.manifest(repository, reference: reference.reference) }
    return try ClipError.inContext(name) {
      try resolve(manifestBytes: top.bytes, digest: top.digest, platform: platform, chosen: chosen) { descriptor in
        if MediaType.isManifest(descriptor.mediaType) || MediaType.isIndex(descriptor.mediaType) {
          return try client.manifest(repository, reference: descriptor.digest.description).bytes
        }
        let bytes = try client.blob(repository, descriptor.digest, range: 0..<UInt64(max(descriptor.size, 0)))
        try verify(bytes, against: descriptor, what: "blob")
        return bytes
      }
    }
  }

  public func read(_ digest: Digest, range: Range<UInt64>) throws -> [UInt8] {
    try client.blob(reference.repository, digest, range: range)
  }

  public func read(
    _ digest: Digest, range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) throws -> Void
  ) throws -> [UInt8] {
    try client.blob(reference.repository, digest, range: range, arrived: arrived)
  }

  /// Streams a blob through a pipe: a thread runs the transfer and writes into it while `body` reads, so the
  /// consumer pulls at its own pace and the transfer waits when it falls behind (no whole-blob copy anywhere).
  public func withBlobStream<T>(
    _ digest: Digest, _ body: (@escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws -> T
  ) throws -> T {
    var fds: [Int32] = [0, 0]
    guard pipe(&fds) == 0 else { throw ClipError.system("pipe") }
    let (readEnd, writeEnd) = (fds[0], fds[1])
    _ = fcntl(writeEnd, 1031, 1 << 20)  // F_SETPIPE_SZ (Linux), not exported to Swift: a 1 MiB pipe
    let transfer = BlobTransfer()
    let client = self.client
    let repository = reference.repository
    let thread = Thread {
      do {
        try client.streamBlob(repository, digest) { bytes in
          var done = 0
          while done < bytes.count {
            let n = write(writeEnd, bytes.baseAddress.map { $0 + done }, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ClipError(.system, "blob reader went away") }
            done += n
          }
        }
      } catch {
        transfer.finish(error)
        close(writeEnd)
        return
      }
      transfer.finish(nil)
      close(writeEnd)
    }
    thread.start()
    var readerOpen = true
    func closeReader() {
      if readerOpen {
        close(readEnd)
        readerOpen = false
      }
    }
    defer {
      closeReader()  // a consumer that stops early makes the writer fail, which ends the transfer
      transfer.wait()
    }
    return try body { buffer in
      while true {
        let n = Glibc.read(readEnd, buffer.baseAddress, buffer.count)
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw ClipError.system("read", "blob stream") }
        if n == 0, let error = transfer.wait() { throw error }
        return n
      }
    }
  }
}

/// The outcome of a background blob transfer.
final class BlobTransfer: @unchecked Sendable {
  private let condition = NSCondition()
  private var done = false
  private var error: (any Error)?

  func finish(_ error: (any Error)?) {
    condition.lock()
    self.error = error
    done = true
    condition.broadcast()
    condition.unlock()
  }

  /// Waits for the transfer to end; its error, if it failed.
  @discardableResult
  func wait() -> (any Error)? {
    condition.lock()
    defer { condition.unlock() }
    while !done { condition.wait() }
    return error
  }
}
