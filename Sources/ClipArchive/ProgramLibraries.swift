/// Finds, as a tar stream goes by, the libraries its dynamically linked ELF files name (`ELFDynamic.needed`): of a
/// regular file whose data starts like a 64-bit executable or shared object, it keeps the first `headBytes` (the ELF
/// header, the program headers and, in the files linkers write, the dynamic string table) and the dynamic segment,
/// wherever it lies; at the file's end it reads the names from those and lets them go. One file at a time, so memory
/// stays bounded whatever the layer holds.
///
/// Tell it each entry as the tar reader reports it (`note`), then feed it the same bytes the reader was fed (`feed`).
struct ProgramLibraries {
  /// The bytes of a file's start kept.
  static let headBytes = 1 << 20

  /// The libraries each program names, by entry number (programs that name none are left out).
  private(set) var needed: [Int: [String]] = [:]
  private var files: [(entry: Int, start: UInt64, size: UInt64)] = []
  private var next = 0
  /// The current file: its first bytes, how far it has gone by, its dynamic segment (once its program headers are
  /// in) and the bytes of that segment past the head.
  private var head: [UInt8] = []
  private var position: UInt64 = 0
  private var dynamic: Range<UInt64>?
  private var dynamicTail: [UInt8] = []

  /// Notes entry number `number` of the stream: a regular file that could be a program is watched for.
  mutating func note(_ entry: TarEntry, number: Int) {
    guard entry.kind == .regular, entry.size >= 64 else { return }
    files.append((number, entry.dataOffset, entry.size))
  }

  /// Takes the stream's bytes `bytes`, which start at tar-stream offset `offset`.
  mutating func feed(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) {
    let end = offset + UInt64(bytes.count)
    while next < files.count {
      let file = files[next]
      guard file.start < end else { return }  // its data comes later
      // This chunk's part of the file, in file offsets.
      let from = file.start + position
      let to = min(end, file.start + file.size)
      guard from >= offset else {
        drop()  // some of it went by before it was noted
        continue
      }
      if from < to {
        let part = UnsafeRawBufferPointer(rebasing: bytes[Int(from - offset)..<Int(to - offset)])
        guard take(part, at: position) else {
          drop()
          continue
        }
        position += UInt64(part.count)
      }
      guard position == file.size else { return }  // more of it to come
      if let names = (try? ELFDynamic.needed(read)) ?? nil, !names.names.isEmpty { needed[file.entry] = names.names }
      drop()
    }
  }

  /// Keeps what is needed of `part` (file bytes at `at`); false once the file is known not to be a dynamically linked
  /// program worth reading on.
  private mutating func take(_ part: UnsafeRawBufferPointer, at: UInt64) -> Bool {
    let headEnd = UInt64(Self.headBytes)
    if at == 0 && part.count >= 18 && !ELFDynamic.startsProgram(Array(part.prefix(18))) { return false }
    if at < headEnd {
      head.append(contentsOf: part.prefix(Int(headEnd - at)))
      if head.count >= 18 && !ELFDynamic.startsProgram(Array(head.prefix(18))) { return false }
      if dynamic == nil, head.count >= 64, let table = ELFDynamic.programHeaderTable(head) {
        // Header fields are the image's bytes: an end that overflows is a malformed file, not a trap.
        let (tableEnd, overflow) = table.offset.addingReportingOverflow(UInt64(table.count))
        guard !overflow, tableEnd <= headEnd else { return false }
        if tableEnd <= UInt64(head.count) {
          guard let found = (try? ELFDynamic.segments(read)) ?? nil, let segment = found.dynamic,
            segment.size <= 1 << 16
          else { return false }  // static, or not what a loader would take
          let (segmentEnd, overflow) = segment.offset.addingReportingOverflow(segment.size)
          guard !overflow else { return false }
          dynamic = segment.offset..<segmentEnd
        }
      }
    }
    // The dynamic segment's bytes past the head, as they go by (in order: the stream is read front to back).
    if let dynamic, dynamic.upperBound > headEnd {
      let lower = max(dynamic.lowerBound, headEnd, at)
      let upper = min(dynamic.upperBound, at + UInt64(part.count))
      if lower < upper { dynamicTail.append(contentsOf: part[Int(lower - at)..<Int(upper - at)]) }
    }
    return true
  }

  /// Up to `count` of the kept bytes of the current file at `offset` (those of the head and of the dynamic segment).
  private func read(_ offset: UInt64, _ count: Int) -> [UInt8] {
    var out: [UInt8] = []
    var at = offset
    let (end, overflow) = offset.addingReportingOverflow(UInt64(max(count, 0)))
    guard !overflow else { return [] }
    if at < UInt64(head.count) {
      out += head[Int(at)..<Int(min(end, UInt64(head.count)))]
      at = min(end, UInt64(head.count))
    }
    if at < end, let dynamic, dynamic.upperBound > UInt64(Self.headBytes) {
      let tailStart = max(dynamic.lowerBound, UInt64(Self.headBytes))
      guard at >= tailStart, at < tailStart + UInt64(dynamicTail.count) else { return out }
      out += dynamicTail[Int(at - tailStart)..<Int(min(end - tailStart, UInt64(dynamicTail.count)))]
    }
    return out
  }

  private mutating func drop() {
    head = []
    position = 0
    dynamic = nil
    dynamicTail = []
    next += 1
    if next >= 4096 {  // only the files still to come are kept
      files.removeFirst(next)
      next = 0
    }
  }
}
