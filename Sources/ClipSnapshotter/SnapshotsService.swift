import ContainerdAPI
import Foundation
import GRPCCore
import SwiftProtobuf

/// `containerd.services.snapshots.v1.Snapshots` over a `Snapshotter`: what containerd's proxy snapshotter plugin
/// talks to. Errors keep their class as gRPC status codes (containerd's errdefs maps them back).
public struct SnapshotsService: Sendable {
  /// The snapshotter answering the calls.
  public let snapshotter: Snapshotter

  /// Serves `snapshotter`.
  public init(snapshotter: Snapshotter) { self.snapshotter = snapshotter }

  /// The service for a gRPC server.
  public var service: any RegistrableRPCService { Handler(snapshotter: snapshotter) }
}

private typealias Snapshots = Containerd_Services_Snapshots_V1_Snapshots

private struct Handler: Snapshots.SimpleServiceProtocol {
  let snapshotter: Snapshotter

  func prepare(
    request: Containerd_Services_Snapshots_V1_PrepareSnapshotRequest, context: ServerContext
  ) async throws -> Containerd_Services_Snapshots_V1_PrepareSnapshotResponse {
    let mounts = try answer {
      try snapshotter.prepare(key: request.key, parent: request.parent, labels: request.labels)
    }
    return .with { $0.mounts = mounts.map(Self.mount) }
  }

  func view(
    request: Containerd_Services_Snapshots_V1_ViewSnapshotRequest, context: ServerContext
  ) async throws -> Containerd_Services_Snapshots_V1_ViewSnapshotResponse {
    let mounts = try answer { try snapshotter.view(key: request.key, parent: request.parent, labels: request.labels) }
    return .with { $0.mounts = mounts.map(Self.mount) }
  }

  func mounts(
    request: Containerd_Services_Snapshots_V1_MountsRequest, context: ServerContext
  ) async throws -> Containerd_Services_Snapshots_V1_MountsResponse {
    let mounts = try answer { try snapshotter.mounts(key: request.key) }
    return .with { $0.mounts = mounts.map(Self.mount) }
  }

  func commit(
    request: Containerd_Services_Snapshots_V1_CommitSnapshotRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    try answer { try snapshotter.commit(name: request.name, key: request.key, labels: request.labels) }
    return Google_Protobuf_Empty()
  }

  func remove(
    request: Containerd_Services_Snapshots_V1_RemoveSnapshotRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    try answer { try snapshotter.remove(key: request.key) }
    return Google_Protobuf_Empty()
  }

  func stat(
    request: Containerd_Services_Snapshots_V1_StatSnapshotRequest, context: ServerContext
  ) async throws -> Containerd_Services_Snapshots_V1_StatSnapshotResponse {
    let info = try answer { try snapshotter.stat(key: request.key) }
    return .with { $0.info = Self.info(info) }
  }

  func update(
    request: Containerd_Services_Snapshots_V1_UpdateSnapshotRequest, context: ServerContext
  ) async throws -> Containerd_Services_Snapshots_V1_UpdateSnapshotResponse {
    let wanted = SnapshotInfo(
      name: request.info.name, parent: request.info.parent, kind: .active, created: Date(), updated: Date(),
      labels: request.info.labels)
    let info = try answer { try snapshotter.update(wanted, fieldPaths: request.updateMask.paths) }
    return .with { $0.info = Self.info(info) }
  }

  func list(
    request: Containerd_Services_Snapshots_V1_ListSnapshotsRequest,
    response: RPCWriter<Containerd_Services_Snapshots_V1_ListSnapshotsResponse>, context: ServerContext
  ) async throws {
    let infos = try answer { try snapshotter.list(filters: request.filters) }
    // In batches, as containerd's own server sends them.
    for start in stride(from: 0, to: infos.count, by: 100) {
      let batch = infos[start..<min(start + 100, infos.count)]
      try await response.write(.with { $0.info = batch.map(Self.info) })
    }
  }

  func usage(
    request: Containerd_Services_Snapshots_V1_UsageRequest, context: ServerContext
  ) async throws -> Containerd_Services_Snapshots_V1_UsageResponse {
    let usage = try answer { try snapshotter.usage(key: request.key) }
    return .with {
      $0.size = usage.size
      $0.inodes = usage.inodes
    }
  }

  func cleanup(
    request: Containerd_Services_Snapshots_V1_CleanupRequest, context: ServerContext
  ) async throws -> Google_Protobuf_Empty {
    try answer { try snapshotter.cleanup() }
    return Google_Protobuf_Empty()
  }

  /// Runs a snapshotter call, turning its errors into gRPC statuses.
  private func answer<T>(_ body: () throws -> T) throws -> T {
    do {
      return try body()
    } catch let error as SnapshotError {
      let code: RPCError.Code =
        switch error.code {
        case .notFound: .notFound
        case .alreadyExists: .alreadyExists
        case .failedPrecondition: .failedPrecondition
        case .invalidArgument: .invalidArgument
        case .internal: .internalError
        }
      throw RPCError(code: code, message: error.message)
    } catch {
      throw RPCError(code: .internalError, message: "\(error)")
    }
  }

  private static func mount(_ mount: SnapshotMount) -> Containerd_Types_Mount {
    .with {
      $0.type = mount.type
      $0.source = mount.source
      $0.options = mount.options
    }
  }

  private static func info(_ info: SnapshotInfo) -> Containerd_Services_Snapshots_V1_Info {
    .with {
      $0.name = info.name
      $0.parent = info.parent
      $0.kind =
        switch info.kind {
        case .view: .view
        case .active: .active
        case .committed: .committed
        }
      $0.createdAt = Google_Protobuf_Timestamp(date: info.created)
      $0.updatedAt = Google_Protobuf_Timestamp(date: info.updated)
      $0.labels = info.labels
    }
  }
}
