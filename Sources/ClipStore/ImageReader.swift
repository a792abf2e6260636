import ClipArchive
import ClipCore
import ClipIndex
import ClipRegistry
import Synchronization

/// Reads file contents of an indexed image straight from its blobs: each read fetches the compressed span(s) that
/// hold the bytes, checks them against the span digest, and decodes from the span's checkpoint.
///
/// ## Concurrency model
/// Safe to share between threads. The index and tree are immutable; the only mutable state is a small cache of
/// decoded spans behind one mutex, which is never held while fetching or decoding.
public final class ImageReader: Sendable {
  /// The image index.
  public let index: ImageIndex
  /// The merged root filesystem.
  public let tree: MergedTree
  /// Where blobs are read from.
  public let source: any ImageSource
  private let spans: Mutex<SpanCache>

  /// Opens an image index over a source, building the merged tree.
  public init(index: ImageIndex, source: any ImageSource, cachedSpans: Int = 4) throws {
    self.index = index
    self.tree = try MergedTree(layers: index.layerIndexes)
    self.source = source
    self.spans = Mutex(SpanCache(capacity: cachedSpans))
  }

  /// The decoded bytes of span `span` of layer `layer` (0-based), verified.
  public func span(layer: Int, span: Int) throws -> [UInt8] {
    if let cached = spans.withLock({ $0.get(layer, span) }) { return cached }
    let layerIndex = index.layerIndexes[layer]
    let bytes = try ClipError.inContext("layer \(layer + 1) (\(layerIndex.digest))") {
      try ClipError.inContext("span \(span)") {
        let range = layerIndex.compressedRange(ofSpan: span)
        let compressed = try source.read(layerIndex.digest, range: range)
        guard SHA256.hash(compressed) == layerIndex.spanDigests[span] else {
          throw ClipError(
            .digestMismatch, "compressed bytes \(range.lowerBound)..<\(range.upperBound) do not match the span digest")
        }
        let count = Int(layerIndex.uncompressedRange(ofSpan: span).count)
        return try compressed.withUnsafeBytes {
          try SpanDecoder.decode(
            layerIndex.compression, from: layerIndex.checkpoints[span], compressed: $0, count: count)
        }
      }
    }
    spans.withLock { $0.put(layer, span, bytes) }
    return bytes
  }

  /// Calls `body` with consecutive pieces of `count` bytes at tar-stream offset `offset` of layer `layer`.
  public func read(layer: Int, offset: UInt64, count: UInt64, _ body: (ArraySlice<UInt8>) throws -> Void) throws {
    let layerIndex = index.layerIndexes[layer]
    guard offset + count <= layerIndex.uncompressedSize else {
      throw ClipError(.corrupt, "read past the end of layer \(layer + 1) (\(layerIndex.digest))")
    }
    var position = offset
    let end = offset + count
    while position < end {
      let spanNumber = layerIndex.span(containing: position)
      let range = layerIndex.uncompressedRange(ofSpan: spanNumber)
      let bytes = try span(layer: layer, span: spanNumber)
      let from = Int(position - range.lowerBound)
      let to = Int(min(end, range.upperBound) - range.lowerBound)
      guard to > from else { throw ClipError(.corrupt, "empty span \(spanNumber) of layer \(layer + 1)") }
      try body(bytes[from..<to])
      position += UInt64(to - from)
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

/// The most recently used decoded spans.
struct SpanCache {
  let capacity: Int
  private var entries: [(layer: Int, span: Int, bytes: [UInt8])] = []

  init(capacity: Int) { self.capacity = capacity }

  mutating func get(_ layer: Int, _ span: Int) -> [UInt8]? {
    guard let i = entries.firstIndex(where: { $0.layer == layer && $0.span == span }) else { return nil }
    let entry = entries.remove(at: i)
    entries.append(entry)
    return entry.bytes
  }

  mutating func put(_ layer: Int, _ span: Int, _ bytes: [UInt8]) {
    guard capacity > 0 else { return }
    if entries.count >= capacity { entries.removeFirst() }
    entries.append((layer, span, bytes))
  }
}
