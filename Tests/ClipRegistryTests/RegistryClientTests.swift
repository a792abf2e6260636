import ClipCore
import ClipOCI
import Foundation
import Synchronization
import Testing

@testable import ClipRegistry

/// A scripted transport: answers each request from a handler and records what was sent.
final class FakeTransport: HTTPTransport, Sendable {
  struct Answer {
    var status: Int
    var headers: [String: String] = [:]
    var body: [UInt8] = []
  }
  let handler: @Sendable (HTTPRequest, Int) -> Answer
  let sent = Mutex<[HTTPRequest]>([])

  init(_ handler: @escaping @Sendable (HTTPRequest, Int) -> Answer) { self.handler = handler }

  func perform(_ request: HTTPRequest, body: (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool) throws
    -> HTTPResponseHead
  {
    let count = sent.withLock {
      $0.append(request)
      return $0.count
    }
    let answer = handler(request, count)
    if answer.status < 0 { throw ClipError(.unavailable, "connection refused") }
    let head = HTTPResponseHead(status: answer.status, headers: answer.headers)
    guard (200..<300).contains(answer.status) else {
      return HTTPResponseHead(status: answer.status, headers: answer.headers, errorBody: answer.body)
    }
    var offset = 0
    while offset < answer.body.count {  // deliver in small pieces, like a network would
      let end = min(answer.body.count, offset + 7)
      let more = try answer.body[offset..<end].withUnsafeBytes { try body(head, $0) }
      offset = end
      if !more { break }
    }
    return head
  }
}

@Suite struct RegistryClientTests {
  let blob = Array((0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) })

  @Test(arguments: [
    ("busybox", "docker.io", "library/busybox", "latest"),
    ("docker://127.0.0.1:5000/debian:bookworm", "127.0.0.1:5000", "debian", "bookworm"),
    ("quay.io/org/app", "quay.io", "org/app", "latest"),
    ("localhost/a/b-c_d.e:v1.2", "localhost", "a/b-c_d.e", "v1.2"),
    ("user/image:tag", "docker.io", "user/image", "tag"),
  ])
  func references(text: String, registry: String, repository: String, tag: String) throws {
    let reference = try ImageReference(text)
    #expect(reference.registry == registry)
    #expect(reference.repository == repository)
    #expect(reference.tag == tag)
  }

  @Test func digestReferencesAndHosts() throws {
    let digest = "sha256:" + String(repeating: "ab", count: 32)
    let reference = try ImageReference("docker://127.0.0.1:5000/x@\(digest)")
    #expect(reference.reference == digest && reference.tag == nil && reference.isLoopback)
    #expect(try ImageReference("busybox").apiHost == "registry-1.docker.io")
    #expect(try !ImageReference("quay.io/a").isLoopback)
  }

  @Test func pinnedReferencesKeepTheTagAndNameTheDigest() throws {
    let digest = Digest.of(Array("manifest".utf8))
    let pinned = try ImageReference("docker://127.0.0.1:5000/debian:bookworm").pinned(to: digest)
    #expect(pinned.description == "docker://127.0.0.1:5000/debian:bookworm@\(digest)")
    let reparsed = try ImageReference(pinned.description)
    #expect(reparsed == pinned && reparsed.reference == digest.description && reparsed.tag == "bookworm")
    let other = Digest.of(Array("other".utf8))
    #expect(
      try ImageReference("busybox@\(digest)").pinned(to: other).description
        == "docker://docker.io/library/busybox@\(other)")
  }

  @Test(arguments: ["UPPER/case", "a//b", "repo:bad tag!", "repo@sha256:zz", "-lead/x"])
  func invalidReferences(text: String) {
    #expect(throws: ClipError.self) { try ImageReference(text) }
  }

  @Test func challengeParsing() {
    let (scheme, parameters) = RegistryClient.parseChallenge(
      #"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#)
    #expect(scheme == "Bearer")
    #expect(parameters["realm"] == "https://auth.example/token")
    #expect(parameters["service"] == "registry.example")
    #expect(parameters["scope"] == "repository:a/b:pull,push")
  }

  @Test func bearerTokenIsFetchedOnceAndSent() throws {
    let blob = self.blob
    let transport = FakeTransport { request, _ in
      if request.url.hasPrefix("http://auth.local/token") {
        guard request.header("Authorization") == Credentials(username: "u", password: "p").basicHeader,
          request.url.contains("scope=repository:repo:pull")
        else { return .init(status: 401) }
        return .init(status: 200, body: Array(#"{"token":"T0K","expires_in":300}"#.utf8))
      }
      guard request.header("Authorization") == "Bearer T0K" else {
        return .init(
          status: 401, headers: ["www-authenticate": #"Bearer realm="http://auth.local/token",service="reg""#])
      }
      return .init(status: 206, headers: ["content-range": "bytes 10-19/1000"], body: Array(blob[10..<20]))
    }
    let client = RegistryClient(
      host: "reg.local", plainHTTP: true, transport: transport, credentials: Credentials(username: "u", password: "p"))
    let digest = Digest.of(blob)
    #expect(try client.blob("repo", digest, range: 10..<20) == Array(blob[10..<20]))
    #expect(try client.blob("repo", digest, range: 10..<20) == Array(blob[10..<20]))
    let tokenRequests = transport.sent.withLock { $0.filter { $0.url.contains("auth.local") }.count }
    #expect(tokenRequests == 1)
  }

  @Test func wrongPasswordIsOneClearError() throws {
    let transport = FakeTransport { _, _ in
      .init(status: 401, headers: ["www-authenticate": #"Basic realm="reg""#])
    }
    let client = RegistryClient(
      host: "reg.local", plainHTTP: true, transport: transport, credentials: Credentials(username: "u", password: "x"))
    let error = try #require(throws: ClipError.self) { try client.manifest("repo", reference: "latest") }
    #expect(error.code == .unauthorized)
    #expect(error.message.contains("401"))
  }

  @Test func serverIgnoringRangeStillGivesTheRange() throws {
    let blob = self.blob
    let transport = FakeTransport { _, _ in .init(status: 200, body: blob) }
    let client = RegistryClient(host: "reg.local", plainHTTP: true, transport: transport, credentials: nil)
    #expect(try client.blob("repo", Digest.of(blob), range: 500..<731) == Array(blob[500..<731]))
  }

  @Test func wrongContentRangeIsRefused() throws {
    let blob = self.blob
    let transport = FakeTransport { _, _ in
      .init(status: 206, headers: ["content-range": "bytes 0-9/1000"], body: Array(blob[0..<10]))
    }
    let client = RegistryClient(host: "reg.local", plainHTTP: true, transport: transport, credentials: nil)
    #expect(throws: ClipError.self) { try client.blob("repo", Digest.of(blob), range: 100..<110) }
  }

  @Test func transientFailuresAreRetried() throws {
    let manifest = Array(#"{"schemaVersion":2,"manifests":[]}"#.utf8)
    let transport = FakeTransport { _, count in
      count == 1 ? .init(status: -1) : count == 2 ? .init(status: 503) : .init(status: 200, body: manifest)
    }
    let client = RegistryClient(host: "reg.local", plainHTTP: true, transport: transport, credentials: nil)
    #expect(try client.manifest("repo", reference: "latest").bytes == manifest)
    #expect(transport.sent.withLock { $0.count } == 3)

    let failing = FakeTransport { _, _ in .init(status: 503) }
    let giveUp = RegistryClient(host: "reg.local", plainHTTP: true, transport: failing, credentials: nil, attempts: 3)
    let error = try #require(throws: ClipError.self) { try giveUp.manifest("repo", reference: "latest") }
    #expect(error.code == .unavailable && failing.sent.withLock { $0.count } == 3)
  }

  @Test func redirectsDropCredentialsForOtherHosts() throws {
    let blob = self.blob
    let transport = FakeTransport { request, _ in
      if request.url.hasPrefix("http://reg.local/") {
        return .init(status: 307, headers: ["location": "http://blobs.other/b?sig=1"])
      }
      return .init(status: 200, body: blob)
    }
    let client = RegistryClient(
      host: "reg.local", plainHTTP: true, transport: transport, credentials: Credentials(username: "u", password: "p"))
    var streamed: [UInt8] = []
    try client.streamBlob("repo", Digest.of(blob)) { streamed.append(contentsOf: $0) }
    #expect(streamed == blob)
    let redirected = transport.sent.withLock { $0.last }
    #expect(redirected?.url == "http://blobs.other/b?sig=1")
    #expect(redirected?.header("Authorization") == nil)
  }

  @Test func manifestDigestIsVerified() throws {
    let manifest = Array(#"{"schemaVersion":2,"manifests":[]}"#.utf8)
    let lying = FakeTransport { _, _ in
      .init(
        status: 200, headers: ["docker-content-digest": "sha256:" + String(repeating: "0", count: 64)], body: manifest)
    }
    let client = RegistryClient(host: "reg.local", plainHTTP: true, transport: lying, credentials: nil)
    let error = try #require(throws: ClipError.self) { try client.manifest("repo", reference: "latest") }
    #expect(error.code == .digestMismatch)
    let other = "sha256:" + String(repeating: "1", count: 64)
    #expect(throws: ClipError.self) { try client.manifest("repo", reference: other) }
  }

  @Test func droppedStreamsResumeWithRange() throws {
    let blob = self.blob
    let transport = FakeTransport { request, count in
      if count == 1 { return .init(status: 200, body: Array(blob[0..<300])) }  // cut short: see below
      guard let range = request.header("Range") else { return .init(status: 500) }
      #expect(range == "bytes=300-")
      return .init(status: 206, headers: ["content-range": "bytes 300-999/1000"], body: Array(blob[300...]))
    }
    let cutting = CuttingTransport(inner: transport, cutFirstAfter: 300)
    let client = RegistryClient(host: "reg.local", plainHTTP: true, transport: cutting, credentials: nil)
    var streamed: [UInt8] = []
    try client.streamBlob("repo", Digest.of(blob)) { streamed.append(contentsOf: $0) }
    #expect(streamed == blob)
  }
}

/// Delivers the first response's body, then fails as a dropped connection would.
final class CuttingTransport: HTTPTransport, Sendable {
  let inner: FakeTransport
  let cutFirstAfter: Int
  let calls = Mutex(0)

  init(inner: FakeTransport, cutFirstAfter: Int) {
    self.inner = inner
    self.cutFirstAfter = cutFirstAfter
  }

  func perform(_ request: HTTPRequest, body: (HTTPResponseHead, UnsafeRawBufferPointer) throws -> Bool) throws
    -> HTTPResponseHead
  {
    let call = calls.withLock {
      $0 += 1
      return $0
    }
    let head = try inner.perform(request, body: body)
    if call == 1 { throw ClipError(.unavailable, "transfer closed with bytes remaining") }
    return head
  }
}
