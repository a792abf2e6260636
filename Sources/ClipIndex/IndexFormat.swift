import CZstd
import ClipArchive
import ClipCore
import ClipOCI

/// The clip index file format (specs/index-format.md): a sequence of checksummed frames, one for the image and one
/// per layer. A layer frame depends only on the layer, so it is byte-identical in every image that has the layer and
/// can be stored on its own, keyed by the layer digest.
public enum IndexFormat {
  /// The format version this code writes. It reads versions 1 (no span pieces), 2 (whole windows) and 3 (no
  /// needed libraries) too.
  public static let version: UInt16 = 4
  /// The versions this code reads.
  static let readable: ClosedRange<UInt16> = 1...4
  /// The first bytes of every frame.
  public static let magic: [UInt8] = Array("CLIPIDX\0".utf8)
  /// zstd level for frame payloads: measured as the knee of size against time.
  static let compressionLevel: Int32 = 6
  /// The largest payload a frame may declare (corrupt lengths must not allocate without limit).
  static let maxPayload: UInt64 = 4 << 30

  enum FrameKind: UInt8 {
    case image = 1
    case layer = 2
  }

  // MARK: - Files

  /// Encodes an image index as a complete `.clip` file.
  public static func encode(_ index: ImageIndex) -> [UInt8] {
    var bytes = frame(.image, payload: imagePayload(index))
    for layer in index.layerIndexes { bytes += encode(layer) }
    return bytes
  }

  /// Encodes a layer index as one frame (also the format of a standalone layer index file).
  public static func encode(_ layer: LayerIndex) -> [UInt8] { frame(.layer, payload: layerPayload(layer)) }

  /// Decodes a `.clip` file, verifying every frame's checksum.
  public static func decodeImage(_ bytes: [UInt8]) throws -> ImageIndex {
    var position = 0
    let imageBytes = try readFrame(bytes, at: &position, expecting: .image).payload
    var index = try decodeImagePayload(imageBytes)
    for (i, layer) in index.layers.enumerated() {
      let (version, payload) = try ClipError.inContext("layer \(i + 1) (\(layer.digest))") {
        try readFrame(bytes, at: &position, expecting: .layer)
      }
      let layerIndex = try ClipError.inContext("layer \(i + 1) (\(layer.digest))") {
        try decodeLayerPayload(payload, version: version)
      }
      guard layerIndex.digest == layer.digest else {
        throw ClipError(.corrupt, "corrupt index: layer \(i + 1) is \(layerIndex.digest), expected \(layer.digest)")
      }
      index.layerIndexes.append(layerIndex)
    }
    guard position == bytes.count else {
      throw ClipError(.corrupt, "corrupt index: \(bytes.count - position) unexpected bytes after the last layer")
    }
    return index
  }

  /// Decodes what a `.clip` file says of the image — its frame, with `layerIndexes` left empty — and checks that a
  /// layer frame follows for each of its layers, intact (checksum), of a readable version, with nothing after the
  /// last; the layer frames are neither decompressed nor decoded. For a caller that passes the file on to a mount,
  /// which decodes all of it: a few milliseconds instead of tens.
  public static func decodeImageHeader(_ bytes: [UInt8]) throws -> ImageIndex {
    var position = 0
    let index = try decodeImagePayload(try readFrame(bytes, at: &position, expecting: .image).payload)
    for (i, layer) in index.layers.enumerated() {
      _ = try ClipError.inContext("layer \(i + 1) (\(layer.digest))") {
        try checkFrame(bytes, at: &position, expecting: .layer)
      }
    }
    guard position == bytes.count else {
      throw ClipError(.corrupt, "corrupt index: \(bytes.count - position) unexpected bytes after the last layer")
    }
    return index
  }

  /// Decodes a standalone layer index file.
  public static func decodeLayer(_ bytes: [UInt8]) throws -> LayerIndex {
    var position = 0
    let (version, payload) = try readFrame(bytes, at: &position, expecting: .layer)
    guard position == bytes.count else { throw ClipError(.corrupt, "corrupt layer index: trailing bytes") }
    return try decodeLayerPayload(payload, version: version)
  }

  /// The size of each frame of an encoded image index, for `clip inspect`: the image frame, then one per layer.
  public static func frameSizes(_ bytes: [UInt8]) throws -> [(stored: Int, raw: Int)] {
    var sizes: [(Int, Int)] = []
    var position = 0
    while position < bytes.count {
      let start = position
      let payload = try readFrame(bytes, at: &position, expecting: nil).payload
      sizes.append((position - start, payload.count))
    }
    return sizes
  }

  // MARK: - Frames

  private static let headerSize = 8 + 2 + 1 + 1 + 8 + 8

  private static func frame(_ kind: FrameKind, payload: [UInt8]) -> [UInt8] {
    // Most payloads compress to well under half; only those that do not are compressed again with the worst-case
    // room (a frame is stored raw anyway unless compression makes it smaller).
    func compress(room: Int) -> ([UInt8], Int) {
      var stored = [UInt8](repeating: 0, count: room)
      let size = stored.withUnsafeMutableBytes { out in
        payload.withUnsafeBytes {
          ZSTD_compress(out.baseAddress, room, $0.baseAddress, payload.count, compressionLevel)
        }
      }
      return (stored, size)
    }
    var (stored, size) = compress(room: payload.count / 2 + 1024)
    if ZSTD_isError(size) != 0 { (stored, size) = compress(room: ZSTD_compressBound(payload.count)) }
    var codec: UInt8 = 1
    if ZSTD_isError(size) != 0 || size >= payload.count {
      stored = payload
      codec = 0
    } else {
      stored.removeSubrange(size...)
    }
    var writer = ByteWriter()
    writer.bytes.reserveCapacity(headerSize + stored.count + 32)
    writer.raw(magic)
    writer.u16(version)
    writer.u8(kind.rawValue)
    writer.u8(codec)
    writer.u64(UInt64(payload.count))
    writer.u64(UInt64(stored.count))
    writer.raw(stored)
    writer.raw(SHA256.hash(writer.bytes))
    return writer.bytes
  }

  /// What a frame's header says, once checked.
  private struct FrameHeader {
    var version: UInt16
    var codec: UInt8
    var rawLength: Int
    /// Where the stored payload lies.
    var stored: Range<Int>
  }

  /// Checks the frame at `position` (header, lengths, checksum) and moves `position` past it.
  private static func checkFrame(
    _ bytes: [UInt8], at position: inout Int, expecting kind: FrameKind?
  ) throws -> FrameHeader {
    let start = position
    func corrupt(_ message: String) -> ClipError {
      ClipError(.corrupt, "corrupt index: \(message)", context: ["frame at byte \(start)"])
    }
    guard bytes.count - start >= headerSize + 32 else { throw corrupt("file is truncated") }
    var reader = ByteReader(Array(bytes[start..<start + headerSize]), what: "index frame header")
    guard Array(try reader.raw(8)) == magic else { throw corrupt("not a clip index (bad magic)") }
    let version = try reader.u16()
    guard readable.contains(version) else {
      throw ClipError(
        .unsupported,
        "index format version \(version) is not supported (this clip reads versions \(readable.lowerBound)–\(readable.upperBound))"
      )
    }
    let kindByte = try reader.u8()
    guard let frameKind = FrameKind(rawValue: kindByte) else { throw corrupt("unknown frame kind \(kindByte)") }
    if let kind, kind != frameKind { throw corrupt("expected a \(kind) frame, found \(frameKind)") }
    let codec = try reader.u8()
    let rawLength = try reader.u64()
    let storedLength = try reader.u64()
    guard rawLength <= maxPayload, storedLength <= UInt64(bytes.count - start - headerSize - 32) else {
      throw corrupt("file is truncated or a length is corrupt")
    }
    let end = start + headerSize + Int(storedLength)
    let checksum = bytes[start..<end].withUnsafeBytes { SHA256.hash($0) }
    guard Array(bytes[end..<end + 32]) == checksum else { throw corrupt("checksum mismatch") }
    switch codec {
    case 0: guard rawLength == storedLength else { throw corrupt("raw frame length mismatch") }
    case 1: break
    default: throw corrupt("unknown codec \(codec)")
    }
    position = end + 32
    return FrameHeader(version: version, codec: codec, rawLength: Int(rawLength), stored: (start + headerSize)..<end)
  }

  private static func readFrame(
    _ bytes: [UInt8], at position: inout Int, expecting kind: FrameKind?
  ) throws -> (version: UInt16, payload: [UInt8]) {
    let start = position
    let header = try checkFrame(bytes, at: &position, expecting: kind)
    let stored = Array(bytes[header.stored])
    guard header.codec == 1 else { return (header.version, stored) }
    var payload = [UInt8](repeating: 0, count: header.rawLength)
    let size = payload.withUnsafeMutableBytes { out in
      stored.withUnsafeBytes { ZSTD_decompress(out.baseAddress, out.count, $0.baseAddress, $0.count) }
    }
    guard ZSTD_isError(size) == 0, size == header.rawLength else {
      throw ClipError(.corrupt, "corrupt index: payload does not decompress", context: ["frame at byte \(start)"])
    }
    return (header.version, payload)
  }

  // MARK: - Image payload

  private static func imagePayload(_ index: ImageIndex) -> [UInt8] {
    var w = ByteWriter()
    w.string(index.source)
    w.raw(index.manifestDigest.bytes)
    w.string(index.manifestMediaType)
    w.string(index.platform.description)
    w.raw(index.configDigest.bytes)
    let run = index.runConfig
    w.optionalString(run.user)
    w.strings(run.env)
    w.strings(run.entrypoint)
    w.strings(run.cmd)
    w.optionalString(run.workingDir)
    w.varint(index.layers.count)
    for layer in index.layers {
      w.string(layer.mediaType)
      w.raw(layer.digest.bytes)
      w.varint(layer.size)
      w.raw(layer.diffID.bytes)
    }
    return w.bytes
  }

  private static func decodeImagePayload(_ bytes: [UInt8]) throws -> ImageIndex {
    var r = ByteReader(bytes, what: "image index")
    let source = try r.string()
    let manifestDigest = try r.digest()
    let manifestMediaType = try r.string()
    let platform = try Platform(parsing: try r.string())
    let configDigest = try r.digest()
    let run = ImageConfig.RunConfig(
      user: try r.optionalString(), env: try r.strings(), entrypoint: try r.strings(), cmd: try r.strings(),
      workingDir: try r.optionalString())
    let layerCount = try r.count(minimumSize: 66)
    var layers: [ImageLayer] = []
    for _ in 0..<layerCount {
      layers.append(
        ImageLayer(mediaType: try r.string(), digest: try r.digest(), size: try r.varint(), diffID: try r.digest()))
    }
    guard r.remaining == 0 else { throw r.corrupt("trailing bytes") }
    return ImageIndex(
      source: source, manifestDigest: manifestDigest, manifestMediaType: manifestMediaType, platform: platform,
      configDigest: configDigest, runConfig: run, layers: layers, layerIndexes: [])
  }

  // MARK: - Layer payload

  private static func layerPayload(_ layer: LayerIndex) -> [UInt8] {
    var w = ByteWriter()
    // Reserved up front (a bound, close for real layers): growing by doubling would hold two copies of a large
    // payload at once.
    var bound = 128 + layer.spanDigests.count * 32
    for point in layer.checkpoints { bound += 26 + point.window.packed.count }
    for entry in layer.entries {
      bound += 64 + entry.path.count + entry.linkTarget.count
      for xattr in entry.xattrs { bound += 10 + xattr.name.utf8.count + xattr.value.count }
    }
    for pieces in layer.spanPieces { bound += pieces.reach.count * (10 + 32) }
    for names in layer.neededLibraries.values { bound += 20 + names.reduce(0) { $0 + 10 + $1.utf8.count } }
    w.bytes.reserveCapacity(bound)
    w.raw(layer.digest.bytes)
    w.u8(layer.compression.rawValue)
    w.varint(layer.compressedSize)
    w.varint(layer.uncompressedSize)
    w.raw(layer.diffID.bytes)
    w.varint(layer.spanSize)
    w.varint(layer.checkpoints.count)
    var previous = Checkpoint(uncompressedOffset: 0, compressedOffset: 0)
    for point in layer.checkpoints {
      w.varint(point.uncompressedOffset - previous.uncompressedOffset)
      w.varint(point.compressedOffset - previous.compressedOffset)
      w.u8(point.bits)
      w.varint(point.window.count)
      w.data(point.window.packed)
      previous = point
    }
    for digest in layer.spanDigests { w.raw(digest) }
    w.varint(layer.entries.count)
    var previousPath: [UInt8] = []
    for entry in layer.entries {
      w.u8(entry.kind.rawValue)
      let shared = zip(previousPath, entry.path).prefix { $0 == $1 }.count
      w.varint(shared)
      w.data(entry.path[shared...])
      previousPath = entry.path
      w.varint(entry.mode)
      w.varint(entry.uid)
      w.varint(entry.gid)
      w.svarint(entry.mtime)
      w.varint(entry.mtimeNanoseconds)
      switch entry.kind {
      case .regular:
        w.varint(entry.size)
        if entry.size > 0 { w.varint(entry.dataOffset) }
      case .symlink, .hardlink:
        w.data(entry.linkTarget)
      case .characterDevice, .blockDevice:
        w.varint(entry.deviceMajor)
        w.varint(entry.deviceMinor)
      case .directory, .fifo:
        break
      }
      w.varint(entry.xattrs.count)
      for xattr in entry.xattrs {
        w.string(xattr.name)
        w.data(xattr.value)
      }
    }
    // Span pieces (version 2): the piece size, then per span the reach deltas and the piece digests.
    w.varint(layer.pieceSize)
    if layer.pieceSize > 0 {
      for (span, pieces) in layer.spanPieces.enumerated() {
        var previous = layer.checkpoints[span].uncompressedOffset
        for reach in pieces.reach {
          w.varint(reach - previous)
          previous = reach
        }
        for digest in pieces.digests { w.raw(digest) }
      }
    }
    // Needed libraries (version 4): 0 if not recorded, else the program count + 1; per program, by entry number,
    // the entry number's delta and the names.
    let programs = layer.recordsNeededLibraries ? layer.neededLibraries.sorted(by: { $0.key < $1.key }) : []
    w.varint(layer.recordsNeededLibraries ? programs.count + 1 : 0)
    var previousEntry = 0
    for (entry, names) in programs {
      w.varint(entry - previousEntry)
      previousEntry = entry
      w.varint(names.count)
      for name in names { w.string(name) }
    }
    return w.bytes
  }

  private static func decodeLayerPayload(_ bytes: [UInt8], version: UInt16) throws -> LayerIndex {
    var r = ByteReader(bytes, what: "layer index")
    let digest = try r.digest()
    let compressionByte = try r.u8()
    guard let compression = LayerCompression(rawValue: compressionByte) else {
      throw r.corrupt("unknown compression \(compressionByte)")
    }
    let compressedSize = try r.varint()
    let uncompressedSize = try r.varint()
    let diffID = try r.digest()
    let spanSize = try r.varint()
    let checkpointCount = try r.count(minimumSize: 4 + 32)
    var checkpoints: [Checkpoint] = []
    checkpoints.reserveCapacity(checkpointCount)
    var previous = Checkpoint(uncompressedOffset: 0, compressedOffset: 0)
    for _ in 0..<checkpointCount {
      let (u, uOverflow) = previous.uncompressedOffset.addingReportingOverflow(try r.varint())
      let (c, cOverflow) = previous.compressedOffset.addingReportingOverflow(try r.varint())
      let bits = try r.u8()
      // Version 3: the window's length and its kept runs; before, the whole window.
      let windowCount = version >= 3 ? try r.varint() : nil
      let windowBytes = try r.data()
      let window =
        if let windowCount {
          windowCount <= UInt64(deflateWindowSize)
            ? CheckpointWindow(count: Int(windowCount), packed: windowBytes) : nil
        } else {
          windowBytes.count <= deflateWindowSize ? CheckpointWindow(windowBytes) : nil
        }
      guard let window, !uOverflow, !cOverflow, u <= uncompressedSize, c <= compressedSize, bits < 8,
        c > 0 || bits == 0
      else { throw r.corrupt("checkpoint out of range") }
      previous = Checkpoint(uncompressedOffset: u, compressedOffset: c, bits: bits, window: window)
      checkpoints.append(previous)
    }
    var spanDigests: [[UInt8]] = []
    spanDigests.reserveCapacity(checkpointCount)
    for _ in 0..<checkpointCount { spanDigests.append(Array(try r.raw(32))) }
    let entryCount = try r.count(minimumSize: 8)
    var entries: [TarEntry] = []
    entries.reserveCapacity(entryCount)
    var previousPath: [UInt8] = []
    for _ in 0..<entryCount {
      let kindByte = try r.u8()
      guard let kind = EntryKind(rawValue: kindByte) else { throw r.corrupt("unknown entry kind \(kindByte)") }
      let shared = try r.varint()
      guard shared <= UInt64(previousPath.count) else { throw r.corrupt("bad path prefix") }
      let suffix = try r.raw(try r.count())
      var path: [UInt8] = []
      path.reserveCapacity(Int(shared) + suffix.count)
      path += previousPath[..<Int(shared)]
      path += suffix
      previousPath = path
      var entry = TarEntry(path: path, kind: kind)
      entry.mode = try r.varint32()
      entry.uid = try r.varint32()
      entry.gid = try r.varint32()
      entry.mtime = try r.svarint()
      entry.mtimeNanoseconds = try r.varint32()
      switch kind {
      case .regular:
        entry.size = try r.varint()
        if entry.size > 0 { entry.dataOffset = try r.varint() }
        let (end, overflow) = entry.dataOffset.addingReportingOverflow(entry.size)
        guard !overflow, end <= uncompressedSize else { throw r.corrupt("file data out of range") }
      case .symlink, .hardlink:
        entry.linkTarget = try r.data()
      case .characterDevice, .blockDevice:
        entry.deviceMajor = try r.varint32()
        entry.deviceMinor = try r.varint32()
      case .directory, .fifo:
        break
      }
      let xattrCount = try r.count(minimumSize: 2)
      for _ in 0..<xattrCount { entry.xattrs.append(ExtendedAttribute(name: try r.string(), value: try r.data())) }
      entries.append(entry)
    }
    for i in checkpoints.indices.dropFirst()
    where checkpoints[i].uncompressedOffset < checkpoints[i - 1].uncompressedOffset
      || checkpoints[i].compressedStart < checkpoints[i - 1].compressedOffset
    {
      throw r.corrupt("checkpoints out of order")
    }
    var layer = LayerIndex(
      digest: digest, compression: compression, compressedSize: compressedSize, uncompressedSize: uncompressedSize,
      diffID: diffID, spanSize: spanSize, checkpoints: checkpoints, spanDigests: spanDigests, entries: entries)
    // Span pieces (version 2; absent in version 1)
    let pieceSize = r.remaining > 0 ? try r.varint() : 0
    if pieceSize > 0 {
      guard pieceSize >= 1024 else { throw r.corrupt("piece size \(pieceSize) too small") }
      for span in 0..<layer.spanCount {
        let compressed = layer.compressedRange(ofSpan: span)
        let span = layer.uncompressedRange(ofSpan: span)
        let count = Int((UInt64(compressed.count) + pieceSize - 1) / pieceSize)
        guard count > 0, count * 33 <= r.remaining else { throw r.corrupt("span pieces out of range") }
        var reach: [UInt64] = []
        var previous = span.lowerBound
        for _ in 0..<count {
          let (next, overflow) = previous.addingReportingOverflow(try r.varint())
          guard !overflow, next <= span.upperBound else { throw r.corrupt("span piece reach out of range") }
          reach.append(next)
          previous = next
        }
        guard previous == span.upperBound else { throw r.corrupt("span pieces do not reach the end of the span") }
        var digests: [[UInt8]] = []
        for _ in 0..<count { digests.append(Array(try r.raw(32))) }
        layer.spanPieces.append(SpanPieces(reach: reach, digests: digests))
      }
      layer.pieceSize = pieceSize
    }
    // Needed libraries (version 4; absent before)
    let stored = version >= 4 ? try r.varint() : 0
    if stored > 0 {
      layer.recordsNeededLibraries = true
      let programs = stored - 1
      guard programs <= UInt64(layer.entries.count) else {
        throw r.corrupt("\(programs) programs in \(layer.entries.count) entries")
      }
      var entry: UInt64 = 0
      for index in 0..<Int(programs) {
        let (next, overflow) = entry.addingReportingOverflow(try r.varint())
        guard !overflow, next < UInt64(layer.entries.count), index == 0 || next > entry,
          layer.entries[Int(next)].kind == .regular
        else { throw r.corrupt("needed libraries of entry \(next): not a file of the layer, or out of order") }
        entry = next
        let count = try r.varint()
        guard count > 0, count <= UInt64(r.remaining) else { throw r.corrupt("\(count) needed libraries") }
        var names: [String] = []
        for _ in 0..<Int(count) { names.append(try r.string()) }
        layer.neededLibraries[Int(entry)] = names
      }
    }
    guard r.remaining == 0 else { throw r.corrupt("trailing bytes") }
    return layer
  }
}
