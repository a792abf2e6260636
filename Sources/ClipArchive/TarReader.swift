import ClipCore

/// A streaming tar reader: feed it the uncompressed layer in chunks of any size; it reports every entry with the
/// offset of its data, never holding more than one header (or one extended header) in memory.
///
/// Reads ustar, GNU (long names and links, base-256 numbers) and PAX (path, linkpath, size, uid, gid, mtime with
/// fractions, `SCHILY.xattr.*`; global headers as defaults). GNU sparse files and multi-volume archives are refused.
public struct TarReader {
  /// The most bytes an extended header (PAX, GNU long name) may have.
  public static let maxExtendedHeaderSize = 1 << 20

  private enum State {
    case header
    case skipping(remaining: UInt64)
    case extended(type: UInt8, remaining: UInt64, padding: UInt64)
    case end
  }

  private var state = State.header
  private var pending: [UInt8] = []  // a partial header or extended-header payload
  private var position: UInt64 = 0  // absolute offset of the next byte fed
  private var entryStart: UInt64 = 0  // where the current entry's first header began
  private var longName: [UInt8]?
  private var longLink: [UInt8]?
  private var pax: [String: [UInt8]] = [:]
  private var globalPax: [String: [UInt8]] = [:]
  private var zeroBlocks = 0

  /// Creates a reader positioned at the start of a tar stream.
  public init() { pending.reserveCapacity(512) }

  /// True once the end-of-archive marker has been read; later bytes are ignored.
  public var isFinished: Bool {
    if case .end = state { return true }
    return false
  }

  /// Feeds the next bytes of the stream, calling `emit` for each complete entry.
  public mutating func feed(_ chunk: UnsafeRawBufferPointer, emit: (TarEntry) throws -> Void) throws {
    var index = 0
    let count = chunk.count
    while index < count {
      switch state {
      case .end:
        position += UInt64(count - index)
        return
      case .skipping(let remaining):
        let n = Int(min(remaining, UInt64(count - index)))
        index += n
        position += UInt64(n)
        state = remaining == UInt64(n) ? .header : .skipping(remaining: remaining - UInt64(n))
      case .extended(let type, let remaining, let padding):
        let n = Int(min(remaining, UInt64(count - index)))
        pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[index..<index + n]))
        index += n
        position += UInt64(n)
        if remaining == UInt64(n) {
          try finishExtended(type: type)
          pending.removeAll(keepingCapacity: true)
          state = padding > 0 ? .skipping(remaining: padding) : .header
        } else {
          state = .extended(type: type, remaining: remaining - UInt64(n), padding: padding)
        }
      case .header:
        if pending.isEmpty && count - index >= 512 {
          let block = UnsafeRawBufferPointer(rebasing: chunk[index..<index + 512])
          index += 512
          position += 512
          try headerBlock(block, emit: emit)
        } else {
          let n = min(512 - pending.count, count - index)
          pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[index..<index + n]))
          index += n
          position += UInt64(n)
          if pending.count == 512 {
            let block = pending
            pending.removeAll(keepingCapacity: true)
            try block.withUnsafeBytes { try headerBlock($0, emit: emit) }
          }
        }
      }
    }
  }

  /// Declares the end of the stream; throws if it ends inside an entry.
  public mutating func finish() throws {
    switch state {
    case .end: return
    case .header where pending.isEmpty && longName == nil && longLink == nil && pax.isEmpty:
      return  // no end-of-archive marker, but the last entry is complete (tolerated, as GNU tar does)
    default:
      throw ClipError(
        .corrupt, "tar stream ends in the middle of an entry",
        context: ["entry at offset \(entryStart)", "stream ends at \(position)"])
    }
  }

  // MARK: - Headers

  private mutating func headerBlock(_ block: UnsafeRawBufferPointer, emit: (TarEntry) throws -> Void) throws {
    let headerOffset = position - 512
    if block.allSatisfy({ $0 == 0 }) {
      zeroBlocks += 1
      if zeroBlocks == 2 { state = .end }
      return
    }
    if zeroBlocks > 0 {
      throw ClipError(.corrupt, "tar header after an end-of-archive block", context: ["offset \(headerOffset)"])
    }
    if longName == nil && longLink == nil && pax.isEmpty { entryStart = headerOffset }
    func fail(_ message: String) -> ClipError {
      ClipError(.corrupt, message, context: ["tar header at offset \(headerOffset)"])
    }

    try verifyChecksum(block, fail: fail)
    let type = block[156]
    let size = try number(block, 124, 12, field: "size", fail: fail)

    switch type {
    case UInt8(ascii: "x"), UInt8(ascii: "g"), UInt8(ascii: "L"), UInt8(ascii: "K"):
      guard size <= UInt64(Self.maxExtendedHeaderSize) else {
        throw fail("extended header of \(size) bytes is larger than \(Self.maxExtendedHeaderSize)")
      }
      let padding = (512 - size % 512) % 512
      if size == 0 {
        try finishExtended(type: type)
        state = .header
      } else {
        state = .extended(type: type, remaining: size, padding: padding)
      }
      return
    case UInt8(ascii: "S"):
      throw ClipError(
        .unsupported, "GNU sparse files are not supported", context: ["tar header at offset \(headerOffset)"])
    case UInt8(ascii: "V"):
      return  // a volume label carries no file
    case UInt8(ascii: "M"), UInt8(ascii: "N"), UInt8(ascii: "D"):
      throw ClipError(
        .unsupported, "GNU tar entry type '\(Character(Unicode.Scalar(type)))' is not supported",
        context: ["tar header at offset \(headerOffset)"])
    default:
      break
    }

    var entry = try makeEntry(block, type: type, size: size, fail: fail)
    entry.dataOffset = position
    let dataSize = entry.kind == .regular ? entry.size : 0
    longName = nil
    longLink = nil
    pax.removeAll()
    if dataSize > 0 {
      let (padded, overflow) = dataSize.addingReportingOverflow((512 - dataSize % 512) % 512)
      if overflow { throw fail("entry size \(dataSize) is too large") }
      state = .skipping(remaining: padded)
    } else {
      state = .header
    }
    try emit(entry)
  }

  private func verifyChecksum(_ block: UnsafeRawBufferPointer, fail: (String) -> ClipError) throws {
    var unsigned = 0
    var signed = 0
    for i in 0..<512 {
      let byte = (148..<156).contains(i) ? UInt8(ascii: " ") : block[i]
      unsigned += Int(byte)
      signed += Int(Int8(bitPattern: byte))
    }
    let stored = try number(block, 148, 8, field: "checksum", fail: fail)
    guard stored == UInt64(unsigned) || Int(stored) == signed else {
      throw fail("tar header checksum mismatch (stored \(stored), computed \(unsigned))")
    }
  }

  private func makeEntry(
    _ block: UnsafeRawBufferPointer, type: UInt8, size headerSize: UInt64, fail: (String) -> ClipError
  ) throws -> TarEntry {
    let magic = Array(block[257..<263])
    let isUstar = magic == Array("ustar\0".utf8)
    var name = field(block, 0, 100)
    if isUstar {
      let prefix = field(block, 345, 155)
      if !prefix.isEmpty { name = prefix + [UInt8(ascii: "/")] + name }
    }
    let records = globalPax.merging(pax) { _, local in local }
    if let long = longName { name = long }
    if let path = records["path"] { name = path }
    var link = field(block, 157, 100)
    if let long = longLink { link = long }
    if let path = records["linkpath"] { link = path }

    let kind: EntryKind
    switch type {
    case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
      kind = name.last == UInt8(ascii: "/") ? .directory : .regular
    case UInt8(ascii: "1"): kind = .hardlink
    case UInt8(ascii: "2"): kind = .symlink
    case UInt8(ascii: "3"): kind = .characterDevice
    case UInt8(ascii: "4"): kind = .blockDevice
    case UInt8(ascii: "5"): kind = .directory
    case UInt8(ascii: "6"): kind = .fifo
    default:
      throw fail("unknown tar entry type '\(Character(Unicode.Scalar(type)))'")
    }
    if records.keys.contains(where: { $0.hasPrefix("GNU.sparse.") }) {
      throw ClipError(
        .unsupported, "GNU sparse files are not supported", context: ["tar header at offset \(entryStart)"])
    }

    var entry = TarEntry(path: [], kind: kind)
    entry.path = try ClipError.inContext("tar header at offset \(entryStart)") { try ImagePath.normalize(name) }
    entry.mode = UInt32(truncatingIfNeeded: try number(block, 100, 8, field: "mode", fail: fail)) & 0o7777
    entry.uid =
      try paxID(records["uid"], "uid", fail) ?? id(try number(block, 108, 8, field: "uid", fail: fail), "uid", fail)
    entry.gid =
      try paxID(records["gid"], "gid", fail) ?? id(try number(block, 116, 8, field: "gid", fail: fail), "gid", fail)
    var size = headerSize
    if let text = records["size"] {
      guard let value = UInt64(String(decoding: text, as: UTF8.self)) else { throw fail("malformed PAX size") }
      size = value
    }
    entry.size = kind == .regular ? size : 0
    if let text = records["mtime"] {
      (entry.mtime, entry.mtimeNanoseconds) = try Self.parseTime(text, fail: fail)
    } else {
      entry.mtime = Int64(bitPattern: try number(block, 136, 12, field: "mtime", fail: fail, signed: true))
    }
    switch kind {
    case .symlink:
      entry.linkTarget = link
      if link.isEmpty { throw fail("symlink '\(entry.displayPath)' has no target") }
    case .hardlink:
      entry.linkTarget = try ClipError.inContext("tar header at offset \(entryStart)") { try ImagePath.normalize(link) }
      if entry.linkTarget.isEmpty { throw fail("hardlink '\(entry.displayPath)' has no target") }
    case .characterDevice, .blockDevice:
      entry.deviceMajor = UInt32(truncatingIfNeeded: try number(block, 329, 8, field: "devmajor", fail: fail))
      entry.deviceMinor = UInt32(truncatingIfNeeded: try number(block, 337, 8, field: "devminor", fail: fail))
    default:
      break
    }
    let xattrPrefix = "SCHILY.xattr."
    entry.xattrs =
      records
      .filter { $0.key.hasPrefix(xattrPrefix) }
      .map { ExtendedAttribute(name: String($0.key.dropFirst(xattrPrefix.count)), value: $0.value) }
      .sorted { $0.name < $1.name }
    return entry
  }

  private func paxID(_ text: [UInt8]?, _ what: String, _ fail: (String) -> ClipError) throws -> UInt32? {
    guard let text else { return nil }
    guard let value = UInt32(String(decoding: text, as: UTF8.self)) else { throw fail("malformed PAX \(what)") }
    return value
  }

  private func id(_ value: UInt64, _ what: String, _ fail: (String) -> ClipError) throws -> UInt32 {
    guard value <= UInt64(UInt32.max) else { throw fail("\(what) \(value) is out of range") }
    return UInt32(value)
  }

  // MARK: - Extended headers

  private mutating func finishExtended(type: UInt8) throws {
    let payload = pending
    switch type {
    case UInt8(ascii: "L"): longName = Self.trimNUL(payload)
    case UInt8(ascii: "K"): longLink = Self.trimNUL(payload)
    case UInt8(ascii: "x"): try Self.parsePAX(payload, into: &pax, at: position)
    default: try Self.parsePAX(payload, into: &globalPax, at: position)
    }
  }

  static func trimNUL(_ bytes: [UInt8]) -> [UInt8] {
    if let end = bytes.firstIndex(of: 0) { return Array(bytes[..<end]) }
    return bytes
  }

  /// Parses PAX records: `LENGTH KEY=VALUE\n`, LENGTH counting the whole record.
  static func parsePAX(_ bytes: [UInt8], into records: inout [String: [UInt8]], at offset: UInt64) throws {
    var i = 0
    func fail(_ message: String) -> ClipError {
      ClipError(.corrupt, "malformed PAX header: \(message)", context: ["offset \(offset)"])
    }
    while i < bytes.count {
      if bytes[i] == 0 { break }  // NUL padding
      guard let space = bytes[i...].firstIndex(of: UInt8(ascii: " ")),
        let length = Int(String(decoding: bytes[i..<space], as: UTF8.self)), length > space - i,
        i + length <= bytes.count, bytes[i + length - 1] == UInt8(ascii: "\n")
      else { throw fail("bad record length") }
      let record = bytes[(space + 1)..<(i + length - 1)]
      guard let equals = record.firstIndex(of: UInt8(ascii: "=")) else { throw fail("record without '='") }
      let key = String(decoding: record[record.startIndex..<equals], as: UTF8.self)
      let value = Array(record[(equals + 1)...])
      if value.isEmpty { records.removeValue(forKey: key) } else { records[key] = value }
      i += length
    }
  }

  /// Parses a PAX time: `[-]SECONDS[.FRACTION]`.
  static func parseTime(_ text: [UInt8], fail: (String) -> ClipError) throws -> (Int64, UInt32) {
    let string = String(decoding: text, as: UTF8.self)
    let parts = string.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    guard let first = parts.first, let seconds = Int64(first) else { throw fail("malformed PAX time '\(string)'") }
    var nanos: UInt32 = 0
    if parts.count == 2 {
      let digits = parts[1].prefix(9)
      guard digits.allSatisfy(\.isASCII), let value = UInt32(digits.isEmpty ? "0" : digits) else {
        throw fail("malformed PAX time '\(string)'")
      }
      nanos =
        value
        * UInt32(
          [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000, 1_000_000_000][9 - digits.count])
    }
    if first.hasPrefix("-") && nanos > 0 {
      return (seconds - 1, 1_000_000_000 - nanos)  // -1.25 is 1.25 s before the epoch: -2 s + 0.75 s
    }
    return (seconds, nanos)
  }

  // MARK: - Fields

  private func field(_ block: UnsafeRawBufferPointer, _ offset: Int, _ length: Int) -> [UInt8] {
    let slice = block[offset..<offset + length]
    let end = slice.firstIndex(of: 0) ?? slice.endIndex
    return Array(slice[slice.startIndex..<end])
  }

  /// A numeric field: octal (NUL/space terminated) or GNU base-256 (high bit set).
  private func number(
    _ block: UnsafeRawBufferPointer, _ offset: Int, _ length: Int, field name: String,
    fail: (String) -> ClipError, signed: Bool = false
  ) throws -> UInt64 {
    let first = block[offset]
    if first & 0x80 != 0 {
      let negative = first & 0x40 != 0
      if negative && !signed { throw fail("negative \(name) in tar header") }
      var value: UInt64 = negative ? UInt64.max : 0
      var firstByte = first & 0x7f
      if negative { firstByte |= 0x80 }
      for (i, byte) in block[offset..<offset + length].enumerated() {
        let b = i == 0 ? firstByte : byte
        if i < length - 8 && b != (negative ? 0xff : 0) { throw fail("\(name) in tar header is too large") }
        value = value << 8 | UInt64(b)
      }
      if !negative && value > UInt64(Int64.max) { throw fail("\(name) in tar header is too large") }
      return value
    }
    var value: UInt64 = 0
    var seenDigit = false
    for byte in block[offset..<offset + length] {
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "7"):
        let (shifted, overflow) = value.multipliedReportingOverflow(by: 8)
        if overflow { throw fail("\(name) in tar header is too large") }
        value = shifted | UInt64(byte - UInt8(ascii: "0"))
        seenDigit = true
      case UInt8(ascii: " "), 0:
        if seenDigit { return value }
      default:
        throw fail("malformed \(name) field in tar header")
      }
    }
    return value
  }
}
