import ClipCore
import Foundation
import Synchronization

/// The compressed side of a scan: a refillable input buffer that hands the worker the whole blob as it is read, and
/// each span of it as checkpoints cut it, to digest.
final class CompressedInput {
  private let read: (UnsafeMutableRawBufferPointer) throws -> Int
  private let buffer: UnsafeMutableRawBufferPointer
  private var start = 0
  private var end = 0
  private var base: UInt64 = 0
  private var ended = false
  private let worker: ScanWorker
  private var spanActive = false
  /// Where the current span starts (one byte before its checkpoint's offset when that falls inside a byte).
  private var spanStart: UInt64 = 0
  private var spanHashedUpTo: UInt64 = 0
  private var lastDiscardedByte: UInt8 = 0
  private var sinceProgress = 0
  /// Compressed bytes per span piece (SpanPieces); 0 for none.
  var pieceSize: UInt64 = 0
  /// The current span's first bytes, kept while the scanner still needs them (to find which window bytes it reads).
  private var head: [UInt8] = []
  private var headStart: UInt64 = 0
  private var keepingHead = false
  /// The most bytes a head keeps (32 KiB of output take far fewer, whatever the data).
  static let headLimit = 256 * 1024
  var progress: ((UInt64) -> Void)?

  init(read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int, capacity: Int, worker: ScanWorker) {
    self.read = read
    self.worker = worker
    buffer = .allocate(byteCount: capacity, alignment: 16)
  }

  func release() { buffer.deallocate() }

  /// The unconsumed bytes.
  var available: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: buffer[start..<end]) }

  /// Blob offset of the first unconsumed byte.
  var consumedOffset: UInt64 { base + UInt64(start) }

  func consume(_ count: Int) { start += count }
  func consumeAll() { start = end }

  /// True if no unconsumed byte is left and the source has no more.
  func atEnd() throws -> Bool {
    if start < end { return false }
    return try !fill()
  }

  /// Consumed bytes kept in the buffer when it is refilled: a decoder may report a block boundary that lies a little
  /// before what it consumed (bits it buffered), and the span digest and rewinds must still reach those bytes.
  static let keepBehind = 4096

  /// Moves the consumption point back to `offset` (at most `keepBehind` bytes before the current one).
  func rewind(to offset: UInt64) throws {
    guard offset >= base, offset <= consumedOffset else {
      throw ClipError(.corrupt, "cannot rewind input to \(offset)")
    }
    start = Int(offset - base)
  }

  /// Reads more bytes after the unconsumed ones; false at the end of the blob.
  @discardableResult
  func fill() throws -> Bool {
    let discard = max(0, start - Self.keepBehind)
    if discard > 0 {
      try hashSpan(upTo: base + UInt64(discard))
      extendHead(upTo: base + UInt64(discard))
      lastDiscardedByte = buffer[discard - 1]
      let kept = end - discard
      if kept > 0, let destination = buffer.baseAddress {
        destination.copyMemory(from: destination + discard, byteCount: kept)
      }
      base += UInt64(discard)
      end = kept
      start -= discard
    }
    guard !ended else { return false }
    guard end < buffer.count else {
      throw ClipError(.corrupt, "header larger than \(buffer.count - Self.keepBehind) bytes")
    }
    // Fill the buffer completely (or to the end of the blob), however the source chunks its bytes: the decoder then
    // sees the same input at every call, so the checkpoints it finds, and the index, do not depend on the source.
    let start = end
    while end < buffer.count {
      let count = try read(UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
      guard count > 0 else {
        ended = true
        break
      }
      end += count
    }
    guard end > start else { return false }
    try worker.feed(.blob, UnsafeRawBufferPointer(rebasing: buffer[start..<end]))
    sinceProgress += end - start
    if sinceProgress >= 8 << 20, let progress {
      sinceProgress = 0
      progress(base + UInt64(end))
    }
    return true
  }

  /// Hands the worker the current span's bytes up to `offset`.
  private func hashSpan(upTo offset: UInt64) throws {
    guard spanActive, offset > spanHashedUpTo else { return }
    precondition(spanHashedUpTo >= base, "span bytes were discarded before they were digested")
    try worker.feed(.span, UnsafeRawBufferPointer(rebasing: buffer[Int(spanHashedUpTo - base)..<Int(offset - base)]))
    spanHashedUpTo = offset
  }

  /// The number of pieces of the current span if it ends at `offset`.
  private func pieceCount(upTo offset: UInt64) -> Int {
    pieceSize > 0 ? Int((offset - spanStart + pieceSize - 1) / pieceSize) : 0
  }

  /// Ends the current span at `offset` (returning its number of pieces; nil for the first cut) and starts the next one
  /// there, one byte earlier when the boundary falls `bits` into a byte. The worker digests the span and its pieces.
  func cutSpan(at offset: UInt64, bits: UInt8) throws -> Int? {
    precondition(offset >= base && offset <= consumedOffset, "checkpoint outside the buffered input")
    try hashSpan(upTo: offset)
    var finished: Int?
    if spanActive {
      try worker.endSpan()
      finished = pieceCount(upTo: offset)
    }
    spanActive = true
    spanStart = offset - (bits > 0 ? 1 : 0)
    if bits > 0 {
      let byte = offset - 1 >= base ? buffer[Int(offset - 1 - base)] : lastDiscardedByte
      try [byte].withUnsafeBytes { try worker.feed(.span, $0) }
    }
    spanHashedUpTo = offset
    return finished
  }

  /// Starts keeping the blob bytes from `offset` on (a span's compressed start, at most one byte before the buffer).
  func keepHead(from offset: UInt64) {
    head.removeAll(keepingCapacity: true)
    if offset < base { head.append(lastDiscardedByte) }
    headStart = offset
    keepingHead = true
  }

  /// Hands over the bytes kept since `keepHead`, up to the consumption point (at most `headLimit`), in exchange for
  /// `bytes` (an empty buffer the next head reuses); stops keeping.
  func takeHead(_ bytes: inout [UInt8]) {
    extendHead(upTo: consumedOffset)
    keepingHead = false
    swap(&head, &bytes)
    head.removeAll(keepingCapacity: true)
  }

  private func extendHead(upTo offset: UInt64) {
    let from = headStart + UInt64(head.count)
    guard keepingHead, from >= base, offset > from, head.count < Self.headLimit else { return }
    let to = min(offset, from + UInt64(Self.headLimit - head.count))
    head += buffer[Int(from - base)..<Int(to - base)]
  }

  /// Ends the last span at the end of the blob; returns its number of pieces.
  func finishSpan() throws -> Int {
    let end = base + UInt64(end)
    try hashSpan(upTo: end)
    try worker.endSpan()
    return pieceCount(upTo: end)
  }
}

/// The uncompressed side of a scan: an output buffer that keeps the last 32 KiB (for checkpoint windows) and
/// hands every full chunk to the worker.
final class OutputWindow {
  private let buffer: UnsafeMutableRawBufferPointer
  private var filled = 0
  private var delivered = 0
  private let worker: ScanWorker
  /// Bytes produced so far.
  private(set) var total: UInt64 = 0

  init(chunk: Int, worker: ScanWorker) {
    buffer = .allocate(byteCount: deflateWindowSize + chunk, alignment: 16)
    self.worker = worker
  }

  func release() { buffer.deallocate() }

  /// Where the decoder writes next.
  var space: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]) }

  func produced(_ count: Int) {
    filled += count
    total += UInt64(count)
  }

  /// Replaces `window`'s bytes with the last `count` bytes produced (at most 32 KiB).
  func copyWindow(_ count: Int, into window: inout [UInt8]) {
    let n = min(count, filled)
    window.removeAll(keepingCapacity: true)
    window.append(contentsOf: buffer[(filled - n)..<filled])
  }

  /// Hands undelivered bytes to the worker and keeps only the window.
  func flush() throws {
    if filled > delivered {
      try worker.feed(.tar, UnsafeRawBufferPointer(rebasing: buffer[delivered..<filled]))
    }
    if filled > deflateWindowSize, let base = buffer.baseAddress {
      base.copyMemory(from: base + (filled - deflateWindowSize), byteCount: deflateWindowSize)
      filled = deflateWindowSize
    }
    delivered = filled
  }
}

/// The second thread of a scan: digests the blob as it is read, each span of it and the span's pieces as checkpoints
/// cut it, and digests (diff ID) and walks the tar stream as it is decoded, while the scanning thread decodes. Chunks
/// are copied into a small pool of buffers; `feed` blocks while all are in use.
///
/// ## Concurrency model
/// The scanning thread calls `feed`, `endSpan`, `finish` and `close`; the worker thread (a `JobThread`) owns the
/// hashers and the tar reader until `close` has waited for it. The free buffers and the first error are shared under
/// `pool`.
final class ScanWorker: @unchecked Sendable {
  /// Which stream a chunk belongs to.
  enum Stream {
    /// The blob as read (compressed).
    case blob
    /// The decoded tar stream.
    case tar
    /// The current span's compressed bytes.
    case span
    /// The end of the current span (no bytes).
    case spanEnd
  }

  /// A span's digest and its pieces' digests.
  struct SpanDigests {
    var digest: [UInt8]
    var pieces: [[UInt8]]
  }

  /// What the worker found once it has processed everything.
  struct Results {
    var digest: [UInt8]
    var diffID: [UInt8]
    var entries: [TarEntry]
    var spans: [SpanDigests]
    /// The libraries the layer's programs name, by entry number.
    var neededLibraries: [Int: [String]]
  }

  private let blobHasher = SHA256()
  private let tarHasher = SHA256()
  private let pieceSize: UInt64
  private let spanHasher = SHA256()
  private let pieceHasher = SHA256()
  private var pieceFill: UInt64 = 0
  private var pieceDigests: [[UInt8]] = []
  private var spans: [SpanDigests] = []
  private var reader = TarReader()
  private var entries: [TarEntry] = []
  private var programs = ProgramLibraries()
  private var tarOffset: UInt64 = 0

  private let jobs: JobThread<(stream: Stream, buffer: UnsafeMutableRawBufferPointer?, count: Int)>
  /// The free buffers and the first error, shared with the worker thread.
  private let pool = NSCondition()
  private var free: [UnsafeMutableRawBufferPointer] = []
  private var failure: (any Error)?

  /// A worker with `buffers` buffers of `bufferSize` bytes; spans are cut into pieces of `pieceSize` bytes (0: none).
  init(buffers: Int = 6, bufferSize: Int, pieceSize: UInt64 = 0) {
    self.pieceSize = pieceSize
    for _ in 0..<buffers { free.append(.allocate(byteCount: bufferSize, alignment: 16)) }
    jobs = JobThread(name: "clip-scan", limit: buffers + 2)
    jobs.start { [unowned self] in self.process($0.stream, $0.buffer, $0.count) }
  }

  deinit {
    for buffer in free { buffer.deallocate() }
  }

  /// The worker's error, if it failed.
  private var currentFailure: (any Error)? {
    pool.lock()
    defer { pool.unlock() }
    return failure
  }

  /// Hands a copy of `bytes` to the worker; throws the worker's error, if it failed.
  func feed(_ stream: Stream, _ bytes: UnsafeRawBufferPointer) throws {
    var offset = 0
    while offset < bytes.count {
      pool.lock()
      while free.isEmpty && failure == nil { pool.wait() }
      if let failure {
        pool.unlock()
        throw failure
      }
      let buffer = free.removeLast()
      pool.unlock()
      let count = min(buffer.count, bytes.count - offset)
      if let source = bytes.baseAddress { buffer.baseAddress?.copyMemory(from: source + offset, byteCount: count) }
      offset += count
      jobs.submit((stream, buffer, count))
    }
  }

  /// Marks the end of the span whose bytes were fed since the last mark.
  func endSpan() throws {
    if let failure = currentFailure { throw failure }
    jobs.submit((.spanEnd, nil, 0))
  }

  /// Waits for the worker to process everything fed; returns what it found.
  func finish() throws -> Results {
    close()
    if let failure = currentFailure { throw failure }
    try reader.finish()
    return Results(
      digest: blobHasher.finish(), diffID: tarHasher.finish(), entries: entries, spans: spans,
      neededLibraries: programs.needed)
  }

  /// Stops the worker once what was fed is processed (also on the error path) and waits for it.
  func close() { jobs.close() }

  /// Digests the current span's next bytes, and its pieces'.
  private func hashSpan(_ bytes: UnsafeRawBufferPointer) {
    spanHasher.update(bytes)
    guard pieceSize > 0 else { return }
    var rest = bytes[...]
    while !rest.isEmpty {
      let count = min(rest.count, Int(pieceSize - pieceFill))
      pieceHasher.update(UnsafeRawBufferPointer(rebasing: rest.prefix(count)))
      pieceFill += UInt64(count)
      if pieceFill == pieceSize {
        pieceDigests.append(pieceHasher.finish())
        pieceFill = 0
      }
      rest = rest.dropFirst(count)
    }
  }

  /// On the worker thread: digests or walks one chunk (nothing more once something failed), and frees its buffer.
  private func process(_ stream: Stream, _ buffer: UnsafeMutableRawBufferPointer?, _ count: Int) {
    var error: (any Error)?
    if currentFailure == nil {
      let bytes =
        buffer.map { UnsafeRawBufferPointer(rebasing: $0[0..<count]) } ?? UnsafeRawBufferPointer(start: nil, count: 0)
      switch stream {
      case .blob:
        blobHasher.update(bytes)
      case .tar:
        tarHasher.update(bytes)
        do {
          try reader.feed(bytes) { entry in
            programs.note(entry, number: entries.count)
            entries.append(entry)
          }
          programs.feed(bytes, at: tarOffset)
          tarOffset += UInt64(bytes.count)
        } catch let caught {
          error = caught
        }
      case .span:
        hashSpan(bytes)
      case .spanEnd:
        if pieceFill > 0 { pieceDigests.append(pieceHasher.finish()) }
        spans.append(SpanDigests(digest: spanHasher.finish(), pieces: pieceDigests))
        pieceFill = 0
        pieceDigests = []
      }
    }
    pool.lock()
    if let buffer { free.append(buffer) }
    if let error, failure == nil { failure = error }
    pool.broadcast()
    pool.unlock()
  }
}

/// The third thread of a gzip scan: works out which bytes of each checkpoint's window its span reads (`WindowUsage`)
/// while the scanning thread decodes on; the scanning thread only hands over copies, in buffers recycled from job to
/// job. A window whose use cannot be told is kept whole.
///
/// ## Concurrency model
/// The scanning thread calls `job`, `submit`, `finish` and `close`; the worker thread (a `JobThread`) owns the
/// `WindowUsage` until `close` has waited for it. Spare buffers and results are shared under a mutex.
final class WindowSparsifier: @unchecked Sendable {
  /// One checkpoint's window to sparsify: its span's first output bytes (`count`) decode from `compressed`, which
  /// starts `bits` into its first byte.
  struct Job {
    var checkpoint = 0
    var window: [UInt8] = []
    var bits: UInt8 = 0
    var compressed: [UInt8] = []
    var count = 0
  }

  private let usage = WindowUsage()
  private let jobs = JobThread<Job>(name: "clip-windows", limit: 4)
  /// Spare buffers and results, shared with the worker thread.
  private let shared = Mutex<(spare: [Job], results: [(checkpoint: Int, window: CheckpointWindow)])>(([], []))

  init() {
    jobs.start { [unowned self] in self.process($0) }
  }

  /// An empty job, its buffers recycled.
  func job() -> Job { shared.withLock { $0.spare.popLast() } ?? Job() }

  /// Queues a job (waiting while a few are queued).
  func submit(_ job: Job) { jobs.submit(job) }

  /// Waits for every job; returns each checkpoint's window.
  func finish() -> [(checkpoint: Int, window: CheckpointWindow)] {
    close()
    return shared.withLock { $0.results }
  }

  /// Stops the worker once the queue is done (also on the error path) and waits for it.
  func close() { jobs.close() }

  /// On the worker thread: keeps the bytes of one window that its span reads.
  private func process(_ job: Job) {
    var job = job
    let sparse = job.compressed.withUnsafeBytes {
      usage.sparse(job.window, bits: job.bits, compressed: $0, count: job.count)
    }
    let window = sparse ?? CheckpointWindow(job.window)
    job.window.removeAll(keepingCapacity: true)
    job.compressed.removeAll(keepingCapacity: true)
    shared.withLock {
      $0.results.append((job.checkpoint, window))
      $0.spare.append(job)
    }
  }
}

/// Places checkpoints at least `spanSize` output bytes apart and collects the span digests, and for gzip the span
/// pieces: the compressed input cuts each span into `pieceSize` pieces, and `mark` notes how far the output had got
/// once the input up to an offset was consumed.
struct SpanRecorder {
  let spanSize: UInt64
  let pieceSize: UInt64
  private(set) var checkpoints: [Checkpoint] = []
  private(set) var digests: [[UInt8]] = []
  private(set) var pieces: [SpanPieces] = []
  /// For the current span: output reached with pieces 0...k consumed (0 where no mark fell), by k.
  private var reach: [UInt64] = []
  /// The last checkpoint's whole window, until enough of its span is decoded to tell which bytes it reads (then
  /// empty).
  private var pendingWindow: [UInt8] = []
  private let windows: WindowSparsifier

  init(spanSize: UInt64, pieceSize: UInt64 = 0, windows: WindowSparsifier) {
    self.spanSize = spanSize
    self.pieceSize = pieceSize
    self.windows = windows
  }

  /// Output bytes left before the next checkpoint is due.
  func untilNextCheckpoint(output: OutputWindow) -> UInt64 {
    guard let last = checkpoints.last else { return 0 }
    let since = output.total - last.uncompressedOffset
    return since >= spanSize ? 0 : spanSize - since
  }

  /// Notes that the input before compressed offset `consumed` produced the output before `produced`.
  mutating func mark(consumed: UInt64, produced: UInt64) {
    guard pieceSize > 0, let start = checkpoints.last?.compressedStart, consumed > start else { return }
    let piece = Int((consumed - start + pieceSize - 1) / pieceSize) - 1
    guard piece < 1 << 16 else { return }
    if reach.count <= piece { reach += Array(repeating: 0, count: piece + 1 - reach.count) }
    reach[piece] = max(reach[piece], produced)
  }

  /// Records a checkpoint at this boundary if one is due.
  mutating func maybeCheckpoint(
    at offset: UInt64, bits: UInt8, output: OutputWindow, window: Int, input: CompressedInput
  ) throws {
    if let last = checkpoints.last, output.total - last.uncompressedOffset < spanSize { return }
    sparsifyWindow(output: output, input: input, spanEnded: true)
    if let pieces = try input.cutSpan(at: offset, bits: bits) { close(pieces: pieces, end: output.total) }
    // The window is set once its span tells which of its bytes are read (sparsifyWindow).
    let checkpoint = Checkpoint(uncompressedOffset: output.total, compressedOffset: offset, bits: bits)
    checkpoints.append(checkpoint)
    output.copyWindow(window, into: &pendingWindow)
    if !pendingWindow.isEmpty { input.keepHead(from: checkpoint.compressedStart) }
  }

  /// Once the first 32 KiB of the last span are decoded (or it ended sooner), hands its window and those bytes' input
  /// to `windows`, which keeps only the bytes of the window that decoding the span reads.
  mutating func sparsifyWindow(output: OutputWindow, input: CompressedInput, spanEnded: Bool = false) {
    guard !pendingWindow.isEmpty, let last = checkpoints.indices.last else { return }
    let produced = output.total - checkpoints[last].uncompressedOffset
    guard spanEnded || produced >= UInt64(deflateWindowSize) else { return }
    var job = windows.job()
    job.checkpoint = last
    job.bits = checkpoints[last].bits
    job.count = Int(min(produced, UInt64(deflateWindowSize)))
    swap(&job.window, &pendingWindow)
    input.takeHead(&job.compressed)
    windows.submit(job)
  }

  /// Closes the last span at the end of the blob, and sets the checkpoints' windows.
  mutating func finish(input: CompressedInput, output: OutputWindow) throws {
    sparsifyWindow(output: output, input: input, spanEnded: true)
    if !checkpoints.isEmpty { close(pieces: try input.finishSpan(), end: output.total) }
    for (checkpoint, window) in windows.finish() { checkpoints[checkpoint].window = window }
  }

  /// Takes the digests of the spans (in order) and of their pieces, from the worker.
  mutating func setDigests(_ spans: [ScanWorker.SpanDigests]) {
    precondition(spans.count == checkpoints.count, "\(spans.count) span digests for \(checkpoints.count) spans")
    digests = spans.map(\.digest)
    guard pieceSize > 0 else { return }
    for (span, found) in spans.enumerated() {
      precondition(found.pieces.count == pieces[span].reach.count, "span \(span): piece digests do not match")
      pieces[span].digests = found.pieces
    }
  }

  /// Notes a finished span's pieces (`pieces` of them; ending at tar-stream offset `end`); their digests come later
  /// (`setDigests`).
  private mutating func close(pieces count: Int, end: UInt64) {
    guard pieceSize > 0, let start = checkpoints.last?.uncompressedOffset else { return }
    var reached: [UInt64] = []
    var best = start
    for piece in 0..<count {
      best = min(max(best, piece < reach.count ? reach[piece] : 0), end)
      reached.append(piece == count - 1 ? end : best)
    }
    pieces.append(SpanPieces(reach: reached, digests: []))
    reach = []
  }
}
