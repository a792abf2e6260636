import ClipCore

/// What kind of file a tar entry describes.
public enum EntryKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  /// A regular file with data.
  case regular = 0
  /// A directory.
  case directory = 1
  /// A symbolic link; `linkTarget` is its target, as written.
  case symlink = 2
  /// A hard link to an earlier entry; `linkTarget` is that entry's (normalized) path.
  case hardlink = 3
  /// A character device.
  case characterDevice = 4
  /// A block device.
  case blockDevice = 5
  /// A named pipe.
  case fifo = 6

  /// A one-letter type, as `ls -l` shows it.
  public var letter: Character {
    switch self {
    case .regular: "-"
    case .directory: "d"
    case .symlink: "l"
    case .hardlink: "h"
    case .characterDevice: "c"
    case .blockDevice: "b"
    case .fifo: "p"
    }
  }

  /// A word for messages.
  public var description: String {
    switch self {
    case .regular: "file"
    case .directory: "directory"
    case .symlink: "symlink"
    case .hardlink: "hardlink"
    case .characterDevice: "char device"
    case .blockDevice: "block device"
    case .fifo: "fifo"
    }
  }
}

/// An extended attribute: a name and raw value bytes.
public struct ExtendedAttribute: Sendable, Hashable {
  /// The attribute name, e.g. `security.capability`.
  public var name: String
  /// The raw value.
  public var value: [UInt8]

  /// Creates an attribute.
  public init(name: String, value: [UInt8]) {
    self.name = name
    self.value = value
  }
}

/// One file described by a layer's tar stream, with where its data lives in the uncompressed stream.
public struct TarEntry: Sendable, Equatable {
  /// The path inside the image, normalized: no leading `/` or `./`, no `.` or empty components, no trailing `/`.
  /// Raw bytes, because tar names need not be UTF-8. The empty path is the image root.
  public var path: [UInt8]
  /// The kind of file.
  public var kind: EntryKind
  /// Permission and special bits (`0o7777`: setuid, setgid, sticky, rwx).
  public var mode: UInt32
  /// Owner user id.
  public var uid: UInt32
  /// Owner group id.
  public var gid: UInt32
  /// Data size in bytes (regular files only; zero otherwise).
  public var size: UInt64
  /// Modification time, seconds since the epoch.
  public var mtime: Int64
  /// Nanoseconds part of the modification time.
  public var mtimeNanoseconds: UInt32
  /// Symlink target (as written) or hardlink target (normalized path); empty otherwise.
  public var linkTarget: [UInt8]
  /// Device major number (devices only).
  public var deviceMajor: UInt32
  /// Device minor number (devices only).
  public var deviceMinor: UInt32
  /// Extended attributes from PAX `SCHILY.xattr.*` records, sorted by name.
  public var xattrs: [ExtendedAttribute]
  /// Offset of the entry's data in the uncompressed layer stream.
  public var dataOffset: UInt64

  /// Creates an entry.
  public init(
    path: [UInt8], kind: EntryKind, mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0, size: UInt64 = 0,
    mtime: Int64 = 0, mtimeNanoseconds: UInt32 = 0, linkTarget: [UInt8] = [], deviceMajor: UInt32 = 0,
    deviceMinor: UInt32 = 0, xattrs: [ExtendedAttribute] = [], dataOffset: UInt64 = 0
  ) {
    self.path = path
    self.kind = kind
    self.mode = mode
    self.uid = uid
    self.gid = gid
    self.size = size
    self.mtime = mtime
    self.mtimeNanoseconds = mtimeNanoseconds
    self.linkTarget = linkTarget
    self.deviceMajor = deviceMajor
    self.deviceMinor = deviceMinor
    self.xattrs = xattrs
    self.dataOffset = dataOffset
  }

  /// The path as text (invalid UTF-8 shown with replacement characters), for messages.
  public var displayPath: String { String(decoding: path, as: UTF8.self) }
}

/// Path normalization shared by the tar reader and the merged view.
public enum ImagePath {
  /// Splits a tar path into its components, dropping empty and `.` components; throws on `..`, which would
  /// leave the image root. A leading `/` is dropped (absolute names are confined to the root, as tar does).
  public static func components(_ raw: some Collection<UInt8>) throws -> [ArraySlice<UInt8>] {
    let bytes = Array(raw)
    var parts: [ArraySlice<UInt8>] = []
    for part in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
      if part.count == 1 && part.first == UInt8(ascii: ".") { continue }
      if part.count == 2 && part.allSatisfy({ $0 == UInt8(ascii: ".") }) {
        throw ClipError(.corrupt, "path '\(String(decoding: bytes, as: UTF8.self))' leaves the image root")
      }
      parts.append(part)
    }
    return parts
  }

  /// The normalized form of a tar path (components joined by `/`).
  public static func normalize(_ raw: some Collection<UInt8>) throws -> [UInt8] {
    let parts = try components(raw)
    return Array(parts.joined(separator: [UInt8(ascii: "/")]))
  }
}
