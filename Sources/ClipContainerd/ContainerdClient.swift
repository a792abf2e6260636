import ClipCore
import ContainerdAPI
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import SwiftProtobuf

/// The containerd calls a pull makes, in one namespace (and, once `lease` is set, under that lease), over a
/// connected gRPC client. Errors are containerd's gRPC statuses (`RPCError`), which callers classify.
public struct ContainerdClient: Sendable {
  let content: Containerd_Services_Content_V1_Content.Client<HTTP2ClientTransport.Posix>
  let images: Containerd_Services_Images_V1_Images.Client<HTTP2ClientTransport.Posix>
  let leases: Containerd_Services_Leases_V1_Leases.Client<HTTP2ClientTransport.Posix>
  let snapshots: Containerd_Services_Snapshots_V1_Snapshots.Client<HTTP2ClientTransport.Posix>
  let diff: Containerd_Services_Diff_V1_Diff.Client<HTTP2ClientTransport.Posix>
  /// The namespace every call works in.
  public let namespace: String
  /// The lease new content and snapshots are held by until the image refers to them.
  public var lease: String?

  /// Connects to containerd's socket at `address` and runs `body` with a client for `namespace`.
  public static func with<Result: Sendable>(
    address: String, namespace: String, _ body: (ContainerdClient) async throws -> Result
  ) async throws -> Result {
    guard FileManager.default.fileExists(atPath: address) else {
      throw ClipError(.notFound, "no containerd socket at \(address)")
    }
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: address), transportSecurity: .plaintext,
      config: .defaults { $0.connection.maxIdleTime = nil })
    do {
      return try await withGRPCClient(transport: transport) { grpc in
        try await body(
          ContainerdClient(
            content: .init(wrapping: grpc), images: .init(wrapping: grpc), leases: .init(wrapping: grpc),
            snapshots: .init(wrapping: grpc), diff: .init(wrapping: grpc), namespace: namespace, lease: nil))
      }
    } catch let error as RPCError {
      let code: ClipError.Code =
        switch error.code {
        case .notFound: .notFound
        case .invalidArgument, .failedPrecondition, .alreadyExists: .invalidArgument
        case .unavailable, .deadlineExceeded: .unavailable
        case .permissionDenied, .unauthenticated: .unauthorized
        default: .system
        }
      throw ClipError(code, "containerd (\(address)): \(error.message) (\(error.code))")
    }
  }

  /// The headers containerd reads the namespace and lease from.
  var metadata: Metadata {
    var metadata = Metadata()
    metadata.addString(namespace, forKey: "containerd-namespace")
    if let lease { metadata.addString(lease, forKey: "containerd-lease") }
    return metadata
  }

  // MARK: Leases

  /// Creates a lease that containerd's garbage collector drops by itself after `expiry` (if it is not deleted
  /// first, e.g. because the pull died) and returns its ID.
  public func createLease(expiry: TimeInterval) async throws -> String {
    var request = Containerd_Services_Leases_V1_CreateRequest()
    request.id = "clip-pull-\(UUID().uuidString.lowercased())"
    request.labels = [GarbageCollectionLabels.expire: utcTimestamp(Int(Date().timeIntervalSince1970 + expiry))]
    return try await leases.create(request, metadata: metadata).lease.id
  }

  /// Deletes a lease: what only it held becomes garbage.
  public func deleteLease(_ id: String) async throws {
    var request = Containerd_Services_Leases_V1_DeleteRequest()
    request.id = id
    _ = try await leases.delete(request, metadata: metadata)
  }

  // MARK: Content

  /// Stores `size` bytes with `digest` in the content store, with `labels`, the bytes coming from `chunk(offset)`
  /// (called in order until `size` bytes came) and sent in messages of at most 1 MiB. containerd verifies size and
  /// digest on commit. Content already present gets the labels added instead. A stream that breaks (containerd's
  /// `unavailable`) is started again after a pause, twice at most. Returns false when the content was already there.
  @discardableResult
  public func writeContent(
    digest: String, size: Int64, labels: [String: String],
    chunk: @escaping @Sendable (Int64) async throws -> [UInt8]
  ) async throws -> Bool {
    for attempt in 1...3 {
      let reference = "clip-pull-\(digest)-\(attempt)"
      let request = StreamingClientRequest<Containerd_Services_Content_V1_WriteContentRequest>(metadata: metadata) {
        writer in
        var offset: Int64 = 0
        repeat {
          let bytes = offset < size ? try await chunk(offset) : []
          guard Int64(bytes.count) <= size - offset else {
            throw ClipError(.corrupt, "\(digest): more than its \(size) bytes")
          }
          guard !bytes.isEmpty || offset == size else {
            throw ClipError(.corrupt, "\(digest): ends at \(offset) of \(size)")
          }
          var sent = 0
          repeat {
            let piece = bytes[sent..<min(bytes.count, sent + (1 << 20))]
            var message = Containerd_Services_Content_V1_WriteContentRequest()
            message.ref = reference
            message.total = size
            message.expected = digest
            message.offset = offset
            message.data = Data(piece)
            offset += Int64(piece.count)
            sent += piece.count
            if offset >= size {
              message.action = .commit
              message.labels = labels
            } else {
              message.action = .write
            }
            try await writer.write(message)
          } while sent < bytes.count
        } while offset < size
      }
      do {
        try await content.write(request: request) { response in
          for try await _ in response.messages {}
        }
        return true
      } catch let error as RPCError where error.code == .alreadyExists {
        try await addContentLabels(digest: digest, labels)
        return false
      } catch let error as RPCError where error.code == .unavailable && attempt < 3 {
        // The connection is being made again (a stream that broke, "subchannel isn't ready"): an attempt at once
        // fails the same way, so give it a moment.
        try await Task.sleep(for: .milliseconds(250 * attempt))
        continue
      }
    }
    return true
  }

  /// Sets `labels` on existing content, leaving its other labels.
  func addContentLabels(digest: String, _ labels: [String: String]) async throws {
    guard !labels.isEmpty else { return }
    var request = Containerd_Services_Content_V1_UpdateRequest()
    request.info.digest = digest
    request.info.labels = labels
    request.updateMask = Google_Protobuf_FieldMask(protoPaths: labels.keys.sorted().map { "labels.\($0)" })
    _ = try await content.update(request, metadata: metadata)
  }

  // MARK: Images

  /// Creates the image record `name` pointing at `target`, or points an existing one there.
  public func putImage(name: String, target: Containerd_Types_Descriptor) async throws {
    var image = Containerd_Services_Images_V1_Image()
    image.name = name
    image.target = target
    do {
      var request = Containerd_Services_Images_V1_CreateImageRequest()
      request.image = image
      _ = try await images.create(request, metadata: metadata)
    } catch let error as RPCError where error.code == .alreadyExists {
      var request = Containerd_Services_Images_V1_UpdateImageRequest()
      request.image = image
      request.updateMask = Google_Protobuf_FieldMask(protoPaths: ["target"])
      _ = try await images.update(request, metadata: metadata)
    }
  }

  // MARK: Snapshots (through containerd: its namespaces, leases and garbage collector see them)

  /// Whether the snapshotter has a snapshot named `key` in this namespace.
  public func snapshotExists(_ snapshotter: String, _ key: String) async throws -> Bool {
    var request = Containerd_Services_Snapshots_V1_StatSnapshotRequest()
    request.snapshotter = snapshotter
    request.key = key
    do {
      _ = try await snapshots.stat(request, metadata: metadata)
      return true
    } catch let error as RPCError where error.code == .notFound {
      return false
    }
  }

  /// Prepares an active snapshot; nil when the snapshotter answered that the target its labels name
  /// (`containerd.io/snapshot.ref`) exists already — a remote snapshot.
  public func prepare(
    _ snapshotter: String, key: String, parent: String, labels: [String: String]
  ) async throws -> [Containerd_Types_Mount]? {
    var request = Containerd_Services_Snapshots_V1_PrepareSnapshotRequest()
    request.snapshotter = snapshotter
    request.key = key
    request.parent = parent
    request.labels = labels
    do {
      return try await snapshots.prepare(request, metadata: metadata).mounts
    } catch let error as RPCError where error.code == .alreadyExists {
      return nil
    }
  }

  /// Commits the active snapshot `key` as `name`.
  public func commit(_ snapshotter: String, name: String, key: String, labels: [String: String]) async throws {
    var request = Containerd_Services_Snapshots_V1_CommitSnapshotRequest()
    request.snapshotter = snapshotter
    request.name = name
    request.key = key
    request.labels = labels
    _ = try await snapshots.commit(request, metadata: metadata)
  }

  /// Removes a snapshot.
  public func removeSnapshot(_ snapshotter: String, _ key: String) async throws {
    var request = Containerd_Services_Snapshots_V1_RemoveSnapshotRequest()
    request.snapshotter = snapshotter
    request.key = key
    _ = try await snapshots.remove(request, metadata: metadata)
  }

  /// Unpacks the layer `layer` (already in the content store) onto `mounts` with containerd's diff service.
  public func apply(_ layer: Containerd_Types_Descriptor, onto mounts: [Containerd_Types_Mount]) async throws {
    var request = Containerd_Services_Diff_V1_ApplyRequest()
    request.diff = layer
    request.mounts = mounts
    _ = try await diff.apply(request, metadata: metadata)
  }
}
