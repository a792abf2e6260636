import ClipArchive
import ClipCore
import ClipIndex
import ClipRegistry
import Dispatch
import Foundation
import Synchronization

/// Serves byte ranges of an image's layers: each range maps to the span(s) holding it; a missing span is fetched
/// with one range request (adjacent missing spans in one request), verified against its digest, decoded from its
/// checkpoint and kept in the disk cache (or, without one, a small memory cache). Concurrent readers of one span
/// cause one fetch. Failures are never cached: the next read tries again.
///
/// ## Concurrency model
/// Safe to share between threads, and callers block (FUSE threads never wait on Swift concurrency). Shared state:
/// the in-flight fetches and the memory cache, each behind a mutex held only for bookkeeping, never across I/O.
public final class SpanStore: Sendable {
  /// Where a piece of a read is: in a cache file, or in memory.
  public enum Piece: Sendable {
    /// `count` bytes at `offset` of a cache file.
    case file(File, offset: UInt64, count: Int)
    /// Bytes in memory.
    case bytes(ArraySlice<UInt8>)
  }

  enum Resident {
    case file(File)
    case bytes([UInt8])
  }

  /// The image.
  public let index: ImageIndex
  /// Where the blobs come from.
  public let source: any ImageSource
  /// The disk cache, if any.
  public let disk: DiskCache?
  /// Counters.
  public let stats = StoreStats()
  private let memory: Mutex<MemorySpans>
  private let flights = Mutex<[SpanKey: Flight]>([:])
  /// Whether reads are noted for a profile (so every read must come here: no kernel passthrough).
  public let recording: Bool
  private let touched = Mutex<TouchLog>(TouchLog())
  /// Spans whose fetch just failed, and when: the kernel retries a failed readahead as a plain read at once, and it
  /// should get the same answer then rather than wait out another timeout. Forgotten after `failureMemory` nanoseconds.
  private let recentFailures = Mutex<[SpanKey: (at: UInt64, error: ClipError)]>([:])
  /// Spans whose start was fetched (by their whole-span key).
  private let startedSpans = Mutex<Set<SpanKey>>([])
  /// The compressed bytes of recently fetched span starts (whole pieces), so that a read needing more of such a span
  /// fetches only the rest of it.
  private let compressedStarts = Mutex(MemorySpans(capacity: 8))
  private let failureMemory: UInt64
  /// Reads in progress (prefetching yields to them).
  let activeReads = Atomic<Int>(0)
  /// Decoded spans on their way to the disk cache, served from here until written.
  private let pending = Mutex<[SpanKey: [UInt8]]>([:])
  /// Writes fetched spans to the disk cache after the reads that wanted them were answered, and whole-file copies.
  private let writer = DispatchQueue(label: "clip.span-cache-writer")
  /// Whole-file copies asked for and not yet tried, each with whether it was asked for again meanwhile.
  private let copying = Mutex<[SpanKey: Bool]>([:])

  /// Creates a store. `memorySpans` decoded spans are kept in memory (all of them when there is no disk cache); a
  /// span whose fetch failed fails again at once for `failureMemory` seconds. With `recording`, reads are noted for
  /// `touchedSpans` (a prefetch profile).
  public init(
    index: ImageIndex, source: any ImageSource, disk: DiskCache?, memorySpans: Int = 8, failureMemory: Double = 1,
    recording: Bool = false
  ) {
    self.failureMemory = UInt64(failureMemory * 1e9)
    self.recording = recording
    self.index = index
    self.source = source
    self.disk = disk
    self.memory = Mutex(MemorySpans(capacity: memorySpans))
  }

  /// The key of span `span` of layer `layer`.
  public func key(layer: Int, span: Int) -> SpanKey {
    let layerIndex = index.layerIndexes[layer]
    return SpanKey(layer: layerIndex.digest, range: layerIndex.uncompressedRange(ofSpan: span))
  }

  // MARK: - Reading

  /// Where `count` bytes at tar-stream offset `offset` of layer `layer` are, fetching what is missing.
  ///
  /// `sequentialEnd` is where the file being read ends: a read past the middle of its last span, in a file that goes
  /// on into the next span, starts fetching that span in the background (a sequential reader then rarely waits).
  public func read(layer: Int, offset: UInt64, count: Int, sequentialEnd: UInt64? = nil) throws -> [Piece] {
    let start = DispatchTime.now().uptimeNanoseconds
    activeReads.add(1, ordering: .relaxed)
    defer {
      activeReads.subtract(1, ordering: .relaxed)
      stats.recordRead(nanoseconds: DispatchTime.now().uptimeNanoseconds - start)
    }
    let layerIndex = index.layerIndexes[layer]
    let end = offset + UInt64(count)
    guard count > 0, end <= layerIndex.uncompressedSize else {
      if count == 0 { return [] }
      throw ClipError(.corrupt, "read past the end of layer \(layer + 1) (\(layerIndex.digest))")
    }
    let spans = layerIndex.span(containing: offset)...layerIndex.span(containing: end - 1)
    let resident = try ensure(layer: layer, spans: spans, record: recording, through: end)
    if let sequentialEnd, spans.upperBound + 1 < layerIndex.spanCount {
      let last = layerIndex.uncompressedRange(ofSpan: spans.upperBound)
      if sequentialEnd > last.upperBound, end >= last.lowerBound + UInt64(last.count) / 2 {
        readAhead(layer: layer, span: spans.upperBound + 1)
      }
    }
    var pieces: [Piece] = []
    for span in spans {
      let range = layerIndex.uncompressedRange(ofSpan: span)
      let from = max(offset, range.lowerBound) - range.lowerBound
      let to = min(end, range.upperBound) - range.lowerBound
      guard to > from else { continue }
      switch resident[span] {
      case .file(let file): pieces.append(.file(file, offset: from, count: Int(to - from)))
      case .bytes(let bytes):
        guard Int(to) <= bytes.count else {
          throw ClipError(.system, "span \(span) of layer \(layer + 1): \(bytes.count) bytes held, \(to) needed")
        }
        pieces.append(.bytes(bytes[Int(from)..<Int(to)]))
      case nil: throw ClipError(.system, "span \(span) of layer \(layer + 1) vanished")
      }
    }
    return pieces
  }

  /// Fetches the whole spans `spans` that are neither cached nor on their way, on background threads,
  /// `concurrency` requests at once (neighbours with one request, as `prefetch`), without waiting for reads.
  public func prefetchInBackground(_ spans: [Position], concurrency: Int) {
    let missing = spans.filter { !isPresentOrComing(key(layer: $0.layer, span: $0.span)) }
    guard !missing.isEmpty else { return }
    let thread = Thread { [self] in
      prefetch(missing, concurrency: min(concurrency, missing.count), bytesPerSecond: 0, yieldToReads: false)
    }
    thread.name = "clip-readahead"
    thread.start()
  }

  /// Fetches a span in the background unless it is present or on its way.
  private func readAhead(layer: Int, span: Int) {
    guard !isPresentOrComing(key(layer: layer, span: span)) else { return }
    DispatchQueue.global(qos: .utility).async {
      _ = try? self.ensure(layer: layer, spans: span...span, record: false, through: nil)
    }
  }

  /// Copies the bytes of a read into memory.
  public static func gather(_ pieces: [Piece]) throws -> [UInt8] {
    var out: [UInt8] = []
    for piece in pieces {
      switch piece {
      case .bytes(let bytes): out += bytes
      case .file(let file, let offset, let count): out += try file.read(count: count, at: offset)
      }
    }
    return out
  }

  /// Makes sure spans are present (fetching missing ones), returning where each is. With `through` (where the read
  /// ends), the span a read of a gzip layer ends in is needed only up to there (the spans before it whole): a cached
  /// start that reaches it serves, and a miss of that span alone fetches only its first pieces (`LayerIndex.prefix`).
  /// A later read that needs more of a started span fetches only pieces after the start (whose compressed bytes are
  /// kept), enough to reach the read and at least doubling the start, or the whole span if the start is no longer
  /// kept.
  func ensure(layer: Int, spans: ClosedRange<Int>, record: Bool, through: UInt64?) throws -> [Int: Resident] {
    let layerIndex = index.layerIndexes[layer]
    var resident: [Int: Resident] = [:]
    var mine: [(Int, Flight, prefix: (pieces: Int, reach: UInt64)?)] = []
    var theirs: [(Int, Flight)] = []
    // A read needs the spans it goes past whole, and the one it ends in up to where it ends.
    func neededEnd(_ span: Int) -> UInt64? { span == spans.upperBound ? through : nil }
    for span in spans {
      let needed = neededEnd(span)
      let key = key(layer: layer, span: span)
      if record {
        // As far as a read within one span needs it; a read across spans notes each whole (the same read replayed
        // may reach further into its last span: the kernel's read-ahead windows differ from run to run).
        let reach = spans.count == 1 ? needed : nil
        touched.withLock { $0.note(key, reach: min(reach ?? key.range.upperBound, key.range.upperBound)) }
      }
      if let found = lookup(key) ?? needed.flatMap({ cachedStart(layer: layer, span: span, reaching: $0) }) {
        stats.hits.add(1, ordering: .relaxed)
        resident[span] = found
        continue
      }
      stats.misses.add(1, ordering: .relaxed)
      let now = DispatchTime.now().uptimeNanoseconds
      if let recent = recentFailures.withLock({ failures -> ClipError? in
        guard let failure = failures[key] else { return nil }
        if now - failure.at < failureMemory { return failure.error }
        failures[key] = nil
        return nil
      }) {
        throw recent
      }
      let (flight, owner) = flights.withLock { flights -> (Flight, Bool) in
        if let flight = flights[key] { return (flight, false) }
        let flight = Flight()
        flights[key] = flight
        return (flight, true)
      }
      if owner {
        // It may have arrived between the lookup and the claim.
        if let found = lookup(key) {
          flights.withLock { _ = $0.removeValue(forKey: key) }
          flight.finish(.success(found), end: key.range.upperBound)
          resident[span] = found
        } else {
          var plan = needed.flatMap { layerIndex.prefix(ofSpan: span, reaching: $0) }.map { ($0.pieces, $0.reach) }
          if let kept = compressedStarts.withLock({ $0.get(key) }), span < layerIndex.spanPieces.count {
            // A started span grows to what the read needs, at least doubling (a span sequentially read is fetched
            // in a few requests, a span read here and there not much beyond what is read).
            let reach = layerIndex.spanPieces[span].reach
            let pieces = max(plan?.0 ?? reach.count, 2 * kept.count / Int(layerIndex.pieceSize))
            plan = pieces < reach.count ? (pieces, reach[pieces - 1]) : (reach.count, key.range.upperBound)
          } else if startedSpans.withLock({ $0.contains(key) }) {
            plan = nil  // its start is no longer kept: the whole span
          }
          mine.append((span, flight, plan))
        }
      } else {
        theirs.append((span, flight))
      }
    }
    // Spans fetched together come whole with one request: a start of the last would cost a request of its own.
    if mine.count > 1 { mine = mine.map { ($0.0, $0.1, nil) } }
    var failure: (any Error)?
    var run: [(Int, Flight, prefix: (pieces: Int, reach: UInt64)?)] = []
    func fetchRun() {
      guard !run.isEmpty else { return }
      var finished = 0  // the run's spans served so far (a long run's first ones before its end is in)
      do {
        if run.count == 1, let (span, flight, prefix) = run.first, let prefix {
          let (bytes, end) = try fetchStart(layer: layer, span: span, prefix)
          let start = key(layer: layer, span: span).range.lowerBound
          let placed = place(SpanKey(layer: layerIndex.digest, range: start..<end), bytes)
          resident[span] = placed
          flight.finish(.success(placed), end: end)
        } else {
          try fetch(layer: layer, spans: run.map(\.0)) { span, bytes in
            let key = key(layer: layer, span: span)
            let placed = place(key, bytes)
            resident[span] = placed
            run[finished].1.finish(.success(placed), end: key.range.upperBound)
            finished += 1
          }
        }
      } catch {
        stats.failures.add(1, ordering: .relaxed)
        failure = failure ?? error
        let clipError = error as? ClipError ?? ClipError(.unavailable, "\(error)")
        let now = DispatchTime.now().uptimeNanoseconds
        let unserved = run.dropFirst(finished)
        recentFailures.withLock { failures in
          for (span, _, _) in unserved { failures[key(layer: layer, span: span)] = (now, clipError) }
        }
        for (_, flight, _) in unserved { flight.finish(.failure(error)) }
      }
      flights.withLock { flights in for (span, _, _) in run { flights[key(layer: layer, span: span)] = nil } }
      run.removeAll()
    }
    for entry in mine {
      if let last = run.last, last.0 + 1 != entry.0 || last.prefix != nil || entry.prefix != nil { fetchRun() }
      run.append(entry)
    }
    fetchRun()
    if let failure { throw failure }
    for (span, flight) in theirs {
      let (found, end) = try flight.wait()
      let needed = neededEnd(span)
      if end < needed ?? key(layer: layer, span: span).range.upperBound {
        // That fetch brought a start that ends before this read does: fetch what is missing.
        resident[span] = try ensure(layer: layer, spans: span...span, record: false, through: needed)[span]
      } else {
        resident[span] = found
      }
    }
    return resident
  }

  /// A cached start of the span that reaches `end`, if there is one.
  private func cachedStart(layer: Int, span: Int, reaching end: UInt64) -> Resident? {
    startKeys(layer: layer, span: span, reaching: end).lazy.compactMap { self.lookup($0) }.first
  }

  /// The keys a start of the span that reaches `end` may be cached under, shortest first.
  private func startKeys(layer: Int, span: Int, reaching end: UInt64) -> [SpanKey] {
    let layerIndex = index.layerIndexes[layer]
    guard span < layerIndex.spanPieces.count else { return [] }
    let start = layerIndex.uncompressedRange(ofSpan: span).lowerBound
    return layerIndex.spanPieces[span].reach.dropLast().filter { $0 >= end }.map {
      SpanKey(layer: layerIndex.digest, range: start..<$0)
    }
  }

  /// Fetches the first `plan.pieces` pieces of a span with one range request — only those after the start kept from
  /// an earlier fetch — verifies each, and decodes what they reach; falls back to the whole span if a start decodes
  /// short. Returns the decoded bytes and the tar-stream offset they end at.
  private func fetchStart(layer: Int, span: Int, _ plan: (pieces: Int, reach: UInt64)) throws -> ([UInt8], UInt64) {
    let layerIndex = index.layerIndexes[layer]
    let key = key(layer: layer, span: span)
    let spanBytes = layerIndex.compressedRange(ofSpan: span)
    let digests = layerIndex.spanPieces[span].digests
    let pieceSize = Int(layerIndex.pieceSize)
    let whole = plan.pieces == digests.count
    var compressed = compressedStarts.withLock { $0.get(key) } ?? []
    let have = compressed.count / pieceSize
    let decoded = try ClipError.inContext("layer \(layer + 1) (\(layerIndex.digest))") {
      try ClipError.inContext("span \(span)") { () throws -> [UInt8]? in
        let from = spanBytes.lowerBound + UInt64(have * pieceSize)
        let to = whole ? spanBytes.upperBound : spanBytes.lowerBound + UInt64(plan.pieces * pieceSize)
        let fetched = try source.read(layerIndex.digest, range: from..<to)
        stats.requests.add(1, ordering: .relaxed)
        stats.bytesFetched.add(UInt64(fetched.count), ordering: .relaxed)
        for piece in have..<plan.pieces {
          let offset = (piece - have) * pieceSize
          let bytes = fetched[min(offset, fetched.count)..<min(fetched.count, offset + pieceSize)]
          guard bytes.withUnsafeBytes({ SHA256.hash($0) }) == digests[piece] else {
            throw ClipError(
              .digestMismatch,
              "compressed bytes of piece \(piece) (from \(spanBytes.lowerBound + UInt64(piece * pieceSize))) do not"
                + " match its digest")
          }
        }
        compressed += fetched
        do {
          let bytes = try compressed.withUnsafeBytes {
            try SpanDecoder.decode(
              layerIndex.compression, from: layerIndex.checkpoints[span], compressed: $0,
              count: Int(plan.reach - key.range.lowerBound))
          }
          if whole {
            stats.spansFetched.add(1, ordering: .relaxed)
          } else {
            stats.spanStartsFetched.add(1, ordering: .relaxed)
          }
          return bytes
        } catch let error as ClipError where error.code == .corrupt && !whole {
          return nil  // the pieces decode short of their recorded reach: take the whole span
        }
      }
    }
    startedSpans.withLock { _ = $0.insert(key) }
    compressedStarts.withLock { whole || decoded == nil ? $0.remove(key) : $0.put(key, compressed) }
    if let decoded { return (decoded, plan.reach) }
    guard let bytes = try fetch(layer: layer, spans: [span]).first else {
      throw ClipError(.system, "span \(span) of layer \(layer + 1) vanished")
    }
    return (bytes, key.range.upperBound)
  }

  /// Whether span `key` is held (memory, pending write, disk cache) or being fetched; opens no cache file and leaves
  /// the caches' recency alone (a FUSE thread asks this before fetching ahead).
  private func isPresentOrComing(_ key: SpanKey) -> Bool {
    pending.withLock { $0[key] != nil } || memory.withLock { $0.contains(key) } || disk?.contains(key) == true
      || flights.withLock { $0[key] != nil }
  }

  private func lookup(_ key: SpanKey) -> Resident? {
    if let bytes = pending.withLock({ $0[key] }) { return .bytes(bytes) }
    if let bytes = memory.withLock({ $0.get(key) }) { return .bytes(bytes) }
    if let file = disk?.open(key) { return .file(file) }
    return nil
  }

  /// Keeps a fetched span: answered from memory now, written to the disk cache in the background (write and fsync
  /// are off the reader's path); a span the disk cache cannot take stays in the memory cache.
  private func place(_ key: SpanKey, _ bytes: [UInt8]) -> Resident {
    guard let disk else {
      memory.withLock { $0.put(key, bytes) }
      return .bytes(bytes)
    }
    pending.withLock { $0[key] = bytes }
    writer.async { [self] in
      if disk.store(key, bytes) == nil { memory.withLock { $0.put(key, bytes) } }
      pending.withLock { $0[key] = nil }
    }
    return .bytes(bytes)
  }

  // MARK: - Whole-file copies (kernel passthrough)

  /// The disk cache's copy of tar-stream bytes `range` of layer `layer` (a whole file's data), opened, or nil.
  public func fileCopy(layer: Int, range: Range<UInt64>) -> File? {
    disk?.open(SpanKey(layer: index.layerIndexes[layer].digest, range: range))
  }

  /// Copies tar-stream bytes `range` of layer `layer` (a whole file's data) into the disk cache as one file, in the
  /// background after the span writes before it, if every span holding them is in the disk cache (nothing is
  /// fetched for it), no copy exists, and it takes at most a quarter of the cache.
  public func copyFile(layer: Int, range: Range<UInt64>) {
    guard let disk, UInt64(range.count) <= disk.limit / 4 else { return }
    let key = SpanKey(layer: index.layerIndexes[layer].digest, range: range)
    guard !disk.contains(key) else { return }
    let first = copying.withLock { copying -> Bool in
      guard copying[key] == nil else {
        copying[key] = true  // the attempt waiting may come before the spans this caller saw cached
        return false
      }
      copying[key] = false
      return true
    }
    if first { tryCopy(key, layer: layer, range: range, disk: disk) }
  }

  /// On the writer queue, after the span writes queued before: makes the copy if every span is on disk; asked for
  /// again meanwhile (by a caller that saw more spans cached), tries once more after the writes queued since.
  private func tryCopy(_ key: SpanKey, layer: Int, range: Range<UInt64>, disk: DiskCache) {
    writer.async { [self] in
      if !disk.contains(key), let pieces = cachedPieces(layer: layer, range: range) {
        if disk.storeCopy(key, of: pieces) != nil { stats.filesCopied.add(1, ordering: .relaxed) }
      }
      let again = copying.withLock { copying -> Bool in
        guard copying[key] == true, !disk.contains(key) else {
          copying[key] = nil
          return false
        }
        copying[key] = false
        return true
      }
      if again { tryCopy(key, layer: layer, range: range, disk: disk) }
    }
  }

  /// Where tar-stream bytes `range` of layer `layer` lie in cache files, or nil if any of them is not on disk.
  private func cachedPieces(layer: Int, range: Range<UInt64>) -> [(file: File, offset: UInt64, count: Int)]? {
    let layerIndex = index.layerIndexes[layer]
    guard !range.isEmpty, range.upperBound <= layerIndex.uncompressedSize else { return nil }
    var pieces: [(file: File, offset: UInt64, count: Int)] = []
    for span in layerIndex.span(containing: range.lowerBound)...layerIndex.span(containing: range.upperBound - 1) {
      let spanRange = layerIndex.uncompressedRange(ofSpan: span)
      let end = min(range.upperBound, spanRange.upperBound)
      // The whole span or a start of it that reaches far enough, whichever is on disk (the one just fetched may
      // still be on its way there).
      let keys = [key(layer: layer, span: span)] + startKeys(layer: layer, span: span, reaching: end)
      let onDisk = keys.lazy.compactMap { key -> File? in
        if case .file(let file) = self.lookup(key) { return file }
        return nil
      }
      guard let file = onDisk.first else { return nil }
      let from = max(range.lowerBound, spanRange.lowerBound)
      pieces.append((file, from - spanRange.lowerBound, Int(end - from)))
    }
    return pieces
  }

  /// Waits until every span fetched so far is in the disk cache (or given up on), and every copy asked for is made.
  public func flushWrites() { writer.sync {} }

  /// Fetches consecutive spans with one range request; verifies and decodes each.
  private func fetch(layer: Int, spans: [Int]) throws -> [[UInt8]] {
    var decoded: [[UInt8]] = []
    try fetch(layer: layer, spans: spans) { decoded.append($1) }
    return decoded
  }

  /// Fetches consecutive whole spans with one range request, verifying and decoding each as soon as its compressed
  /// bytes are in and handing it to `each` (span, bytes) in order: the first spans of a long request serve while the
  /// rest is still on its way.
  private func fetch(layer: Int, spans: [Int], each: (Int, [UInt8]) throws -> Void) throws {
    let layerIndex = index.layerIndexes[layer]
    guard let first = spans.first, let last = spans.last else { return }
    let whole =
      layerIndex.compressedRange(ofSpan: first).lowerBound..<layerIndex.compressedRange(ofSpan: last).upperBound
    let spanNames = first == last ? "span \(first)" : "spans \(first)-\(last)"
    var done = 0
    func decodeArrived(_ received: UnsafeRawBufferPointer) throws {
      while done < spans.count {
        let span = spans[done]
        let range = layerIndex.compressedRange(ofSpan: span)
        let end = Int(range.upperBound - whole.lowerBound)
        guard received.count >= end else { return }
        let slice = UnsafeRawBufferPointer(rebasing: received[Int(range.lowerBound - whole.lowerBound)..<end])
        let decoded = try ClipError.inContext("span \(span)") {
          guard SHA256.hash(slice) == layerIndex.spanDigests[span] else {
            throw ClipError(
              .digestMismatch,
              "compressed bytes \(range.lowerBound)..<\(range.upperBound) do not match the span digest")
          }
          return try SpanDecoder.decode(
            layerIndex.compression, from: layerIndex.checkpoints[span], compressed: slice,
            count: Int(layerIndex.uncompressedRange(ofSpan: span).count))
        }
        stats.spansFetched.add(1, ordering: .relaxed)
        done += 1
        try each(span, decoded)
      }
    }
    try ClipError.inContext("layer \(layer + 1) (\(layerIndex.digest))") {
      let compressed = try ClipError.inContext(spanNames) {
        try source.read(layerIndex.digest, range: whole, arrived: decodeArrived)
      }
      stats.requests.add(1, ordering: .relaxed)
      stats.bytesFetched.add(UInt64(compressed.count), ordering: .relaxed)
      guard done == spans.count else {
        throw ClipError(.corrupt, "\(spanNames): \(compressed.count) bytes, short of the last span")
      }
    }
  }

  // MARK: - Profiles and prefetch

  /// The spans reads touched, in first-touch order, each from its start to where the reads in it ended (empty unless
  /// the store was made `recording`).
  public var touchedSpans: [SpanKey] { touched.withLock { $0.touches } }

  /// Where the spans `keys` name (a span's start, up to where it was read) are in this image, as (layer, span, the
  /// tar-stream offset to fetch through — nil for the whole span); spans of layers the image does not have, or that
  /// do not start a span here, are skipped.
  public func positions(of keys: [SpanKey]) -> [Position] {
    let layers = Dictionary(index.layerIndexes.enumerated().map { ($1.digest, $0) }) { first, _ in first }
    return keys.compactMap { key in
      guard let layer = layers[key.layer] else { return nil }
      let layerIndex = index.layerIndexes[layer]
      guard key.range.lowerBound < layerIndex.uncompressedSize else { return nil }
      let span = layerIndex.span(containing: key.range.lowerBound)
      let whole = layerIndex.uncompressedRange(ofSpan: span)
      guard whole.lowerBound == key.range.lowerBound else { return nil }
      return Position(
        layer: layer, span: span, through: key.range.upperBound < whole.upperBound ? key.range.upperBound : nil)
    }
  }

  /// A span to fetch ahead: its layer and number, and the tar-stream offset to fetch through (nil: the whole span).
  public struct Position: Sendable, Equatable {
    /// The layer's position in the image.
    public var layer: Int
    /// The span's number in the layer.
    public var span: Int
    /// Where the start to fetch ends; nil for the whole span.
    public var through: UInt64?

    /// Creates a position.
    public init(layer: Int, span: Int, through: UInt64? = nil) {
      self.layer = layer
      self.span = span
      self.through = through
    }
  }

  /// Fetches spans ahead of reads with `concurrency` threads, at most `bytesPerSecond` (0: unlimited), yielding to
  /// reads in progress: whole spans next to each other in a layer together (`runs`, at most `longestRun`), in the
  /// order they are listed.
  /// Returns when done; errors are counted and skipped (a read will retry).
  public func prefetch(
    _ spans: [Position], concurrency: Int, bytesPerSecond: UInt64, yieldToReads: Bool, longestRun: Int = 4
  ) {
    let queue = WorkList(Self.runs(spans, longest: longestRun))
    let started = DispatchTime.now().uptimeNanoseconds
    let budgetUsed = ByteCounter()
    runOnThreads(max(1, concurrency), name: "clip-prefetch") { [self] _ in
      while let next = queue.next() {
        while yieldToReads && activeReads.load(ordering: .relaxed) > 0 { usleep(2000) }
        if bytesPerSecond > 0 {
          let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
          let ahead = Double(budgetUsed.total) / Double(bytesPerSecond) - elapsed
          if ahead > 0 { usleep(UInt32(min(ahead, 1) * 1e6)) }
        }
        let before = stats.bytesFetched.load(ordering: .relaxed)
        if (try? ensure(layer: next.layer, spans: next.spans, record: false, through: next.through)) != nil {
          let fetched = stats.bytesFetched.load(ordering: .relaxed) - before
          if fetched > 0 { stats.prefetched.add(UInt64(next.spans.count), ordering: .relaxed) }
          budgetUsed.add(fetched)
        }
      }
    }
  }

  /// Spans to fetch with one request each: consecutive whole spans of a layer (at most `longest`) go together, a
  /// span's start alone; listed in the order of their first position (duplicates dropped).
  static func runs(_ positions: [Position], longest: Int = 4) -> [(
    layer: Int, spans: ClosedRange<Int>, through: UInt64?
  )] {
    var seen = Set<SIMD2<Int>>()
    let unique = positions.enumerated()
      .filter { seen.insert(SIMD2($0.element.layer, $0.element.span)).inserted }
      .sorted { ($0.element.layer, $0.element.span) < ($1.element.layer, $1.element.span) }
    var runs: [(layer: Int, spans: ClosedRange<Int>, through: UInt64?, first: Int)] = []
    for (place, position) in unique {
      if let last = runs.last, last.layer == position.layer, last.through == nil, position.through == nil,
        last.spans.upperBound + 1 == position.span, last.spans.count < longest
      {
        runs[runs.count - 1] = (last.layer, last.spans.lowerBound...position.span, nil, min(last.first, place))
      } else {
        runs.append((position.layer, position.span...position.span, position.through, place))
      }
    }
    return runs.sorted { $0.first < $1.first }.map { ($0.layer, $0.spans, $0.through) }
  }

  /// The spans holding the data of the regular file `inode` of `tree`, in order; with `partialEnd`, the last one only
  /// up to the file's end if it ends inside it (what a read of the whole file fetches). Empty for other inodes.
  public func positions(ofFile inode: Int32, in tree: MergedTree, partialEnd: Bool) -> [Position] {
    guard let entry = tree.entry(of: inode), entry.size > 0 else { return [] }
    let layer = Int(tree.inodes[Int(inode)].layer)
    let layerIndex = index.layerIndexes[layer]
    let end = entry.dataOffset + entry.size
    let last = layerIndex.span(containing: end - 1)
    return (layerIndex.span(containing: entry.dataOffset)...last).map { span in
      let partial = partialEnd && span == last && end < layerIndex.uncompressedRange(ofSpan: span).upperBound
      return Position(layer: layer, span: span, through: partial ? end : nil)
    }
  }

  /// Every span of the image, base layer first.
  public var allSpans: [Position] {
    index.layerIndexes.enumerated().flatMap { layer, layerIndex in
      (0..<layerIndex.spanCount).map { Position(layer: layer, span: $0) }
    }
  }
}

/// A fetch in progress that other readers of the same span wait for: where the span (or its start) is, and the
/// tar-stream offset it reaches.
final class Flight: @unchecked Sendable {
  private let condition = NSCondition()
  private var result: Result<(SpanStore.Resident, UInt64), any Error>?

  func finish(_ outcome: Result<SpanStore.Resident, any Error>, end: UInt64 = 0) {
    condition.lock()
    result = outcome.map { ($0, end) }
    condition.broadcast()
    condition.unlock()
  }

  func wait() throws -> (SpanStore.Resident, UInt64) {
    condition.lock()
    defer { condition.unlock() }
    while result == nil { condition.wait() }
    switch result {
    case .success(let found): return found
    case .failure(let error): throw error
    case nil: throw ClipError(.system, "fetch vanished")
    }
  }
}

/// The most recently used decoded spans in memory.
struct MemorySpans {
  let capacity: Int
  private var entries: [(key: SpanKey, bytes: [UInt8])] = []

  init(capacity: Int) { self.capacity = capacity }

  mutating func get(_ key: SpanKey) -> [UInt8]? {
    guard let i = entries.firstIndex(where: { $0.key == key }) else { return nil }
    let entry = entries.remove(at: i)
    entries.append(entry)
    return entry.bytes
  }

  func contains(_ key: SpanKey) -> Bool { entries.contains { $0.key == key } }

  mutating func remove(_ key: SpanKey) { entries.removeAll { $0.key == key } }

  mutating func put(_ key: SpanKey, _ bytes: [UInt8]) {
    guard capacity > 0 else { return }
    entries.removeAll { $0.key == key }
    if entries.count >= capacity { entries.removeFirst() }
    entries.append((key, bytes))
  }
}

/// The spans reads touched, in first-touch order, and the furthest tar-stream offset reads in each reached (a
/// prefetch profile).
struct TouchLog {
  private var order: [SpanKey] = []
  private var reach: [SpanKey: UInt64] = [:]

  mutating func note(_ key: SpanKey, reach end: UInt64) {
    if let known = reach[key] {
      reach[key] = max(known, end)
    } else {
      order.append(key)
      reach[key] = end
    }
  }

  /// Each touched span from its start to its reach.
  var touches: [SpanKey] {
    order.map { SpanKey(layer: $0.layer, range: $0.range.lowerBound..<(reach[$0] ?? $0.range.upperBound)) }
  }
}
