import ClipArchive
import ClipCore
import ClipIndex
import ClipRegistry

/// Reads file contents of an indexed image straight from its blobs, through a span store: each read fetches the
/// compressed span(s) that hold the bytes, checks them against the span digests, and decodes from the checkpoints.
///
/// ## Concurrency model
/// Safe to share between threads: the index and tree are immutable and the store is thread-safe.
public final class ImageReader: Sendable {
  /// The image index.
  public let index: ImageIndex
  /// The merged root filesystem.
  public let tree: MergedTree
  /// The spans.
  public let store: SpanStore

  /// Opens an image index over a source, building the merged tree (or, with `layer`, that layer's own tree in
  /// overlay form); decoded spans are cached on `disk` if given, else a few in memory. With `recording`, the store
  /// notes what reads touch (`SpanStore.touchedSpans`).
  public init(
    index: ImageIndex, source: any ImageSource, disk: DiskCache? = nil, memorySpans: Int = 4, layer: Int? = nil,
    recording: Bool = false
  ) throws {
    self.index = index
    if let layer {
      guard index.layerIndexes.indices.contains(layer) else {
        throw ClipError(.invalidArgument, "the image has no layer \(layer + 1)")
      }
      self.tree = try MergedTree(layers: index.layerIndexes, layer: layer)
    } else {
      self.tree = try MergedTree(layers: index.layerIndexes)
    }
    self.store = SpanStore(
      index: index, source: source, disk: disk, memorySpans: memorySpans, recording: recording)
  }

  /// The decoded bytes of span `span` of layer `layer` (0-based), verified.
  public func span(layer: Int, span: Int) throws -> [UInt8] {
    let range = index.layerIndexes[layer].uncompressedRange(ofSpan: span)
    return try SpanStore.gather(
      try store.read(layer: layer, offset: range.lowerBound, count: Int(range.count)))
  }

  /// Calls `body` with consecutive pieces of `count` bytes at tar-stream offset `offset` of layer `layer`.
  public func read(layer: Int, offset: UInt64, count: UInt64, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
    let layerIndex = index.layerIndexes[layer]
    var position = offset
    let end = offset + count
    while position < end {
      // One span at a time, so memory stays bounded for any file size.
      let spanEnd = layerIndex.uncompressedRange(ofSpan: layerIndex.span(containing: position)).upperBound
      let piece = Int(min(end, spanEnd) - position)
      for part in try store.read(layer: layer, offset: position, count: piece) {
        switch part {
        case .bytes(let bytes): try body(bytes)
        case .file(let file, let offset, let count): try body(try file.read(count: count, at: offset)[...])
        }
      }
      position += UInt64(piece)
    }
  }

  /// Calls `body` with consecutive pieces of the file `inode`'s content, starting at `offset`.
  public func read(inode: Int32, offset: UInt64 = 0, count: UInt64? = nil, _ body: (ArraySlice<UInt8>) throws -> Void)
    throws
  {
    let info = tree.inodes[Int(inode)]
    guard info.kind == .regular, let entry = tree.entry(of: inode) else {
      throw ClipError(.invalidArgument, "not a regular file")
    }
    guard offset < entry.size else { return }
    let length = min(count ?? entry.size, entry.size - offset)
    try read(layer: Int(info.layer), offset: entry.dataOffset + offset, count: length, body)
  }
}
