import ClipCore
import ClipOCI
import Foundation

/// The manifest media types clip accepts, in the Accept header of every manifest request (docker-registry 2.8
/// answers 404 for an OCI manifest requested without the OCI type).
let manifestAccept = [
  MediaType.ociManifest, MediaType.ociIndex, MediaType.dockerManifest, MediaType.dockerManifestList,
].joined(separator: ", ")

extension RegistryClient {
  /// A fetched manifest (or index), verified against its digest.
  public struct FetchedManifest: Sendable {
    /// The raw bytes.
    public var bytes: [UInt8]
    /// Their digest.
    public var digest: Digest
    /// The media type the registry gave.
    public var mediaType: String
  }

  /// Fetches a manifest or index by tag or digest and verifies it: against the digest asked for, and against the
  /// `Docker-Content-Digest` the registry states.
  public func manifest(_ repository: String, reference: String) throws -> FetchedManifest {
    let request = HTTPRequest(
      url: url("\(repository)/manifests/\(reference)"), headers: [("Accept", manifestAccept)], timeout: 60)
    var bytes: [UInt8] = []
    let head = try send(request, scope: Self.scope(repository)) { _, piece in
      bytes.append(contentsOf: piece)
      guard bytes.count <= 4 << 20 else { throw ClipError(.corrupt, "manifest \(reference) is larger than 4 MiB") }
      return true
    }
    let digest = Digest.of(bytes)
    if reference.hasPrefix("sha256:"), reference != digest.description {
      throw ClipError(.digestMismatch, "manifest \(reference) of \(repository) has digest \(digest)")
    }
    if let stated = head["docker-content-digest"], stated != digest.description {
      throw ClipError(
        .digestMismatch, "manifest \(reference) of \(repository) is \(digest), the registry says \(stated)")
    }
    let type = head["content-type"].map { String($0.prefix { $0 != ";" }) }
    return FetchedManifest(bytes: bytes, digest: digest, mediaType: sniffMediaType(bytes) ?? type ?? "")
  }

  /// Reads `range` of a blob with one ranged GET. A server that ignores Range (answers 200) is handled by skipping
  /// to the range and stopping the transfer at its end. `arrived` sees the bytes of the range received so far each
  /// time more came in.
  public func blob(
    _ repository: String, _ digest: Digest, range: Range<UInt64>,
    arrived: (UnsafeRawBufferPointer) throws -> Void = { _ in }
  ) throws -> [UInt8] {
    guard !range.isEmpty else { return [] }
    let request = HTTPRequest(
      url: url("\(repository)/blobs/\(digest)"),
      headers: [("Range", "bytes=\(range.lowerBound)-\(range.upperBound - 1)")], timeout: rangeTimeout)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(Int(range.count))
    var position: UInt64 = 0  // blob offset of the next body byte
    var positioned = false
    try send(request, scope: Self.scope(repository), expecting: [200, 206]) { head, piece in
      if !positioned {
        positioned = true
        if head.status == 206 {
          guard let start = head["content-range"].flatMap(Self.contentRangeStart), start == range.lowerBound else {
            throw ClipError(.corrupt, "registry answered a range read of \(digest) with another range")
          }
          position = start
        }  // 200: the server ignored Range and sends the whole blob; skip to the range, stop at its end
      }
      let skip = Int(min(UInt64(piece.count), range.lowerBound > position ? range.lowerBound - position : 0))
      position += UInt64(piece.count)
      let before = bytes.count
      bytes.append(contentsOf: piece[skip...].prefix(Int(range.count) - bytes.count))
      if bytes.count > before { try bytes.withUnsafeBytes { try arrived($0) } }
      // A 206 ends with the range: let it finish, so the connection is kept for the next request (stopping a
      // transfer closes it: one more TCP handshake per read). A whole blob (200) is cut off once the range is in.
      return head.status == 206 || bytes.count < Int(range.count)
    }
    guard bytes.count == Int(range.count) else {
      throw ClipError(.corrupt, "blob \(digest) ended after \(bytes.count) of \(range.count) bytes asked for")
    }
    return bytes
  }

  static func contentRangeStart(_ header: String) -> UInt64? {
    // bytes START-END/TOTAL
    guard let range = header.split(separator: " ").last, let dash = range.firstIndex(of: "-") else { return nil }
    return UInt64(range[..<dash])
  }

  /// Streams a whole blob into `sink`; a dropped connection resumes where it stopped (Range), within the retry budget.
  public func streamBlob(_ repository: String, _ digest: Digest, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws
  {
    var received: UInt64 = 0
    var resumes = 0
    while true {
      var request = HTTPRequest(url: url("\(repository)/blobs/\(digest)"), timeout: 0)
      if received > 0 { request.headers.append(("Range", "bytes=\(received)-")) }
      var skip: UInt64 = 0
      var positioned = false
      do {
        try send(request, scope: Self.scope(repository), expecting: [200, 206]) { head, piece in
          if !positioned {
            positioned = true
            if head.status == 200 { skip = received }  // the server restarted from the beginning
          }
          var slice = piece[...]
          if skip > 0 {
            let n = Int(min(skip, UInt64(slice.count)))
            slice = slice.dropFirst(n)
            skip -= UInt64(n)
          }
          if !slice.isEmpty {
            try sink(UnsafeRawBufferPointer(rebasing: slice))
            received += UInt64(slice.count)
          }
          return true
        }
        return
      } catch let error as ClipError where error.code == .unavailable && resumes < attempts {
        resumes += 1
        Thread.sleep(forTimeInterval: 0.2 * Double(resumes))
      }
    }
  }

  /// True if the repository has the blob.
  public func hasBlob(_ repository: String, _ digest: Digest, push: Bool = false) throws -> Bool {
    let request = HTTPRequest(method: "HEAD", url: url("\(repository)/blobs/\(digest)"), timeout: 60)
    let head = try send(request, scope: Self.scope(repository, push: push), expecting: [200, 404])
    return head.status == 200
  }

  /// Uploads a blob (monolithic POST then PUT) unless the repository has it; returns its descriptor.
  @discardableResult
  public func uploadBlob(_ repository: String, _ bytes: [UInt8], mediaType: String) throws -> Descriptor {
    let digest = Digest.of(bytes)
    let descriptor = Descriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count))
    if try hasBlob(repository, digest, push: true) { return descriptor }
    let start = HTTPRequest(method: "POST", url: url("\(repository)/blobs/uploads/"), timeout: 60)
    let head = try send(start, scope: Self.scope(repository, push: true), expecting: [202])
    guard let location = head["location"], var target = URLComponents(string: location) else {
      throw ClipError(.corrupt, "registry started an upload without a Location")
    }
    if target.host == nil, let base = URL(string: "\(scheme)://\(host)"),
      let absolute = URL(string: location, relativeTo: base)
    {
      target = URLComponents(url: absolute, resolvingAgainstBaseURL: true) ?? target
    }
    target.queryItems = (target.queryItems ?? []) + [URLQueryItem(name: "digest", value: digest.description)]
    guard let putURL = target.url?.absoluteString else { throw ClipError(.corrupt, "malformed upload location") }
    let put = HTTPRequest(
      method: "PUT", url: putURL, headers: [("Content-Type", "application/octet-stream")], body: bytes, timeout: 300)
    try send(put, scope: Self.scope(repository, push: true), expecting: [201, 204])
    return descriptor
  }

  /// Stores a manifest under a tag or its digest.
  public func putManifest(_ repository: String, reference: String, _ bytes: [UInt8], mediaType: String) throws {
    let request = HTTPRequest(
      method: "PUT", url: url("\(repository)/manifests/\(reference)"), headers: [("Content-Type", mediaType)],
      body: bytes, timeout: 60)
    try send(request, scope: Self.scope(repository, push: true), expecting: [201, 204])
  }

  /// The referrers of a manifest through the OCI 1.1 referrers API, or nil if the registry does not have the API.
  public func referrers(_ repository: String, of digest: Digest, artifactType: String) throws -> Index? {
    let request = HTTPRequest(
      url: url("\(repository)/referrers/\(digest)?artifactType=\(artifactType)"),
      headers: [("Accept", MediaType.ociIndex)], timeout: 60)
    var bytes: [UInt8] = []
    let head = try send(request, scope: Self.scope(repository), expecting: [200, 404, 405]) { _, piece in
      bytes.append(contentsOf: piece)
      return true
    }
    guard head.status == 200, (head["content-type"] ?? "").hasPrefix(MediaType.ociIndex) else { return nil }
    return try decodeJSON(Index.self, from: bytes, what: "referrers of \(digest)")
  }
}
