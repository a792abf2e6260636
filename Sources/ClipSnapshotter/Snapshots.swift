import ClipCore
import Foundation

/// The kinds of snapshot (containerd's `snapshots.Kind`).
public enum SnapshotKind: String, Codable, Sendable {
  /// A read-only view of a committed snapshot.
  case view
  /// A writable snapshot, committed later.
  case active
  /// An immutable snapshot, parent of others.
  case committed
}

/// What containerd knows of a snapshot (`snapshots.Info`).
public struct SnapshotInfo: Codable, Sendable, Equatable {
  /// The key (active, view) or name (committed).
  public var name: String
  /// The committed parent's name; empty for none.
  public var parent: String
  /// The kind.
  public var kind: SnapshotKind
  /// When it was created.
  public var created: Date
  /// When its labels last changed.
  public var updated: Date
  /// Arbitrary metadata.
  public var labels: [String: String]

  /// Creates an info value.
  public init(
    name: String, parent: String, kind: SnapshotKind, created: Date, updated: Date, labels: [String: String]
  ) {
    self.name = name
    self.parent = parent
    self.kind = kind
    self.created = created
    self.updated = updated
    self.labels = labels
  }
}

/// Disk usage of a snapshot's own layer.
public struct SnapshotUsage: Codable, Sendable, Equatable {
  /// Bytes of regular files and symlinks (each inode once).
  public var size: Int64
  /// Inodes.
  public var inodes: Int64

  /// Creates a usage value.
  public init(size: Int64, inodes: Int64) {
    self.size = size
    self.inodes = inodes
  }
}

/// A mount as containerd describes it (`containerd.types.Mount`).
public struct SnapshotMount: Sendable, Equatable {
  /// `bind` or `overlay`.
  public var type: String
  /// The source path (or `overlay`).
  public var source: String
  /// Mount options.
  public var options: [String]

  /// Creates a mount.
  public init(type: String, source: String, options: [String]) {
    self.type = type
    self.source = source
    self.options = options
  }
}

/// A snapshotter failure, in the classes containerd's errdefs (and gRPC status codes) distinguish.
public struct SnapshotError: Error, Sendable, Equatable, CustomStringConvertible {
  /// The class of failure.
  public enum Code: Sendable, Equatable {
    case notFound, alreadyExists, failedPrecondition, invalidArgument, `internal`
  }

  /// The class.
  public var code: Code
  /// What went wrong.
  public var message: String

  /// Creates an error.
  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { message }
}
