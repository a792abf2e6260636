import ClipArchive
import ClipCore
import ClipIndex
import ClipOCI
import ClipRegistry
import ClipTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

@testable import ClipStore

/// A test source that passes all but range reads on to another.
protocol WrappingSource: ImageSource {
  var inner: any ImageSource { get }
}

extension WrappingSource {
  var name: String { inner.name }
  func resolve(platform: Platform) throws -> ResolvedImage { try inner.resolve(platform: platform) }
  func withBlobStream<T>(
    _ digest: Digest, _ body: (@escaping (UnsafeMutableRawBufferPointer) throws -> Int) throws -> T
  ) throws -> T { try inner.withBlobStream(digest, body) }
}

/// Counts range reads on the way to another source.
final class CountingSource: WrappingSource, @unchecked Sendable {
  let inner: any ImageSource
  let lock = NSLock()
  var reads: [Range<UInt64>] = []
  var failing = false

  init(_ inner: any ImageSource) { self.inner = inner }
  func read(_ digest: Digest, range: Range<UInt64>) throws -> [UInt8] {
    lock.lock()
    reads.append(range)
    let fail = failing
    lock.unlock()
    if fail { throw ClipError(.unavailable, "registry down") }
    usleep(20_000)  // slow enough for readers to pile up on one span
    return try inner.read(digest, range: range)
  }
}

/// Streams a range read in two parts, holding the second back until `release` is signalled (or 5 s passed); a read
/// without `arrived` is held back whole.
final class GatedSource: WrappingSource, @unchecked Sendable {
  let inner: any ImageSource
  let release = DispatchSemaphore(value: 0)
  let split: Int
  /// Whether the second part waited the full 5 s.
  let timedOut = Mutex(false)
  /// Streamed reads so far.
  let reads = Mutex(0)
  /// Fail after the first part instead of holding the rest back.
  var dropsAfterFirstPart = false

  init(_ inner: any ImageSource, firstPart split: Int) {
    self.inner = inner
    self.split = split
  }
  /// All at once: after the hold.
  func read(_ digest: Digest, range: Range<UInt64>) throws -> [UInt8] {
    hold()
    return try inner.read(digest, range: range)
  }
  func read(
    _ digest: Digest, range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) throws -> Void
  ) throws -> [UInt8] {
    let bytes = try inner.read(digest, range: range)
    reads.withLock { $0 += 1 }
    try bytes.withUnsafeBytes { try arrived(UnsafeRawBufferPointer(rebasing: $0.prefix(split))) }
    if dropsAfterFirstPart { throw ClipError(.unavailable, "connection dropped") }
    hold()
    try bytes.withUnsafeBytes { try arrived($0) }
    return bytes
  }
  private func hold() {
    if release.wait(timeout: .now() + 5) == .timedOut { timedOut.withLock { $0 = true } }
  }
}

@Suite struct SpanStoreTests {
  let directory = FileManager.default.temporaryDirectory.path + "/clip-span-test-\(UUID().uuidString)"
  let content = testData(count: 3_000_000, seed: 11)

  func image() throws -> (ImageIndex, any ImageSource) {
    var tar = TarBuilder()
    tar.add("big", data: content)
    let bytes = tar.finish()
    try OCILayoutWriter(directory: directory).image(gzipLayer: bytes)
    var indexer = ImageIndexer()
    indexer.spanSize = 256 * 1024
    let source = try openImageSource("oci:\(directory):latest")
    return (try indexer.index(source), source)
  }

  @Test func concurrentReadersCauseOneFetchPerSpan() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let source = CountingSource(inner)
    let disk = try DiskCache(root: directory + "/cache", limit: 1 << 30)
    let store = SpanStore(index: index, source: source, disk: disk)
    let entry = try #require(index.layerIndexes[0].entries.first { $0.kind == .regular })
    let wrong = Mutex(0)
    DispatchQueue.concurrentPerform(iterations: 16) { reader in
      let offset = UInt64(reader * 37_000)
      let bytes = (try? SpanStore.gather(try store.read(layer: 0, offset: entry.dataOffset + offset, count: 900_000)))
      if bytes != Array(content[Int(offset)..<Int(offset) + 900_000]) {
        wrong.withLock { $0 += 1 }
      }
    }
    #expect(wrong.withLock { $0 } == 0)
    // Every span was fetched once: the compressed ranges read never overlap (but for the byte a boundary shares).
    let reads = source.reads.sorted { $0.lowerBound < $1.lowerBound }
    for (a, b) in zip(reads, reads.dropFirst()) { #expect(b.lowerBound + 1 >= a.upperBound) }
    let snapshot = store.stats.snapshot()
    #expect(snapshot.requests == UInt64(reads.count))
    #expect(snapshot.spansFetched <= UInt64(index.layerIndexes[0].spanCount))
  }

  /// A store over `image()` whose source streams a range read in two parts, the first ending with span 1.
  func gatedStore(dropsAfterFirstPart: Bool = false) throws -> (SpanStore, GatedSource) {
    let (index, inner) = try image()
    let layerIndex = index.layerIndexes[0]
    let firstTwo = layerIndex.compressedRange(ofSpan: 1).upperBound - layerIndex.compressedRange(ofSpan: 0).lowerBound
    let source = GatedSource(inner, firstPart: Int(firstTwo))
    source.dropsAfterFirstPart = dropsAfterFirstPart
    return (SpanStore(index: index, source: source, disk: nil), source)
  }

  /// Prefetches spans 0–3 of layer 0 as one request.
  static func prefetchFirstFourSpans(_ store: SpanStore) {
    store.prefetch(
      (0..<4).map { SpanStore.Position(layer: 0, span: $0, through: nil) }, concurrency: 1, bytesPerSecond: 0,
      yieldToReads: false, longestRun: 4)
  }

  /// A request for several spans serves each as soon as its bytes are in, not when the last one is.
  @Test func theFirstSpansOfALongRequestServeBeforeItsEnd() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (store, source) = try gatedStore()
    let layerIndex = store.index.layerIndexes[0]
    let prefetched = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
      Self.prefetchFirstFourSpans(store)
      prefetched.signal()
    }
    // Span 1 is in the first part: a read of it waits for that, not for spans 2 and 3.
    let entry = try #require(layerIndex.entries.first { $0.kind == .regular })
    let one = store.key(layer: 0, span: 1).range
    var served = false
    for _ in 0..<200 where !served {
      usleep(10_000)
      served = store.stats.snapshot().spansFetched >= 2
    }
    #expect(served)
    let bytes = try SpanStore.gather(try store.read(layer: 0, offset: one.lowerBound, count: 1000))
    let start = Int(one.lowerBound - entry.dataOffset)
    #expect(bytes == Array(content[start..<start + 1000]))
    source.release.signal()
    prefetched.wait()
    #expect(source.timedOut.withLock { $0 } == false)
    #expect(store.stats.snapshot().requests == 1)
    #expect(store.stats.snapshot().spansFetched == 4)
  }

  /// A long request cut part-way keeps the spans it served; only the rest count as failed.
  @Test func aRequestCutPartWayKeepsTheSpansItServed() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (store, source) = try gatedStore(dropsAfterFirstPart: true)
    Self.prefetchFirstFourSpans(store)
    #expect(store.stats.snapshot().spansFetched == 2)
    let one = store.key(layer: 0, span: 1).range
    _ = try store.read(layer: 0, offset: one.lowerBound, count: Int(one.count))  // served, no new request
    #expect(source.reads.withLock { $0 } == 1)
    let two = store.key(layer: 0, span: 2).range
    let error = try #require(throws: ClipError.self) {
      try store.read(layer: 0, offset: two.lowerBound, count: 1000)  // failed a moment ago: fails at once
    }
    #expect(error.description.contains("connection dropped"))
    #expect(source.reads.withLock { $0 } == 1)
  }

  @Test func cacheSurvivesRestartAndEvictsOldest() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let root = directory + "/cache"
    let spanBytes = UInt64(index.layerIndexes[0].uncompressedRange(ofSpan: 1).count)
    do {
      let store = SpanStore(index: index, source: inner, disk: try DiskCache(root: root, limit: 1 << 30))
      for span in 0..<4 {
        let range = store.key(layer: 0, span: span).range
        _ = try store.read(layer: 0, offset: range.lowerBound, count: Int(range.count))  // whole spans
      }
      store.flushWrites()  // spans reach the disk cache after the reads were answered
    }
    let source = CountingSource(inner)
    let reopened = try DiskCache(root: root, limit: spanBytes * 3)
    #expect(reopened.size == spanBytes * 4 || reopened.size > spanBytes * 3)
    let store = SpanStore(index: index, source: source, disk: reopened)
    let two = store.key(layer: 0, span: 2).range
    _ = try store.read(layer: 0, offset: two.lowerBound, count: Int(two.count))
    #expect(source.reads.isEmpty)  // served from the cache found on disk
    let five = store.key(layer: 0, span: 5).range
    _ = try store.read(layer: 0, offset: five.lowerBound, count: Int(five.count))
    store.flushWrites()
    #expect(reopened.size <= spanBytes * 3 + 1)  // evicted down to the limit
    #expect(reopened.open(store.key(layer: 0, span: 5)) != nil)
  }

  @Test func wholeFileCopiesComeOnlyFromCachedSpans() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let source = CountingSource(inner)
    let root = directory + "/cache"
    let entry = try #require(index.layerIndexes[0].entries.first { $0.kind == .regular })
    let range = entry.dataOffset..<entry.dataOffset + entry.size
    let store = SpanStore(index: index, source: source, disk: try DiskCache(root: root, limit: 1 << 30))
    store.copyFile(layer: 0, range: range)
    store.flushWrites()
    #expect(store.fileCopy(layer: 0, range: range) == nil)  // no span cached: no copy, and nothing fetched for one
    #expect(source.reads.isEmpty)
    var offset: UInt64 = 0
    while offset < entry.size {
      let count = Int(min(700_000, entry.size - offset))
      _ = try store.read(layer: 0, offset: entry.dataOffset + offset, count: count)
      offset += UInt64(count)
    }
    store.flushWrites()
    let fetched = source.reads.count
    store.copyFile(layer: 0, range: range)
    store.flushWrites()
    let copy = try #require(store.fileCopy(layer: 0, range: range))
    #expect(try copy.read(count: Int(entry.size), at: 0) == content)
    #expect(try copy.size() == entry.size)
    #expect(store.stats.snapshot().filesCopied == 1)
    #expect(source.reads.count == fetched)
    // Found again after a restart; not made where it would take more than a quarter of the cache.
    let reopened = SpanStore(index: index, source: source, disk: try DiskCache(root: root, limit: 1 << 30))
    #expect(reopened.fileCopy(layer: 0, range: range) != nil)
    let small = SpanStore(
      index: index, source: source, disk: try DiskCache(root: directory + "/small", limit: entry.size * 3))
    _ = try small.read(layer: 0, offset: entry.dataOffset, count: Int(entry.size))
    small.copyFile(layer: 0, range: range)
    small.flushWrites()
    #expect(small.fileCopy(layer: 0, range: range) == nil)
  }

  @Test func readsNearASpanStartFetchOnlyItsFirstPieces() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let layer = index.layerIndexes[0]
    #expect(layer.pieceSize > 0 && layer.spanPieces.count == layer.spanCount)
    let source = CountingSource(inner)
    let store = SpanStore(
      index: index, source: source, disk: try DiskCache(root: directory + "/cache", limit: 1 << 30))
    let entry = try #require(layer.entries.first { $0.path == Array("big".utf8) })
    let span = store.key(layer: 0, span: 1).range
    func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
      try SpanStore.gather(try store.read(layer: 0, offset: offset, count: count))
    }
    func expected(_ offset: UInt64, _ count: Int) -> [UInt8] {
      Array(content[Int(offset - entry.dataOffset)..<Int(offset - entry.dataOffset) + count])
    }
    // 10 bytes near the start of span 1: one request for its first pieces, verified and decoded.
    #expect(try read(span.lowerBound + 100, 10) == expected(span.lowerBound + 100, 10))
    #expect(source.reads.count == 1)
    #expect(source.reads[0].lowerBound == layer.compressedRange(ofSpan: 1).lowerBound)
    #expect(source.reads[0].count < layer.compressedRange(ofSpan: 1).count)
    #expect(store.stats.snapshot().spanStartsFetched == 1)
    // The end of the span: only the rest of the span is fetched; then both reads come from the cache.
    #expect(try read(span.upperBound - 10, 10) == expected(span.upperBound - 10, 10))
    #expect(
      source.reads.count == 2
        && source.reads[1] == source.reads[0].upperBound..<layer.compressedRange(ofSpan: 1).upperBound)
    #expect(try read(span.lowerBound + 100, 10) == expected(span.lowerBound + 100, 10))
    #expect(try read(span.upperBound - 10, 10) == expected(span.upperBound - 10, 10))
    #expect(source.reads.count == 2)
    #expect(store.stats.snapshot().spansFetched == 1)
  }

  @Test func aReadAcrossSpansNeedsOnlyTheStartOfTheLast() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let source = CountingSource(inner)
    let store = SpanStore(
      index: index, source: source, disk: try DiskCache(root: directory + "/cache", limit: 1 << 30))
    let entry = try #require(index.layerIndexes[0].entries.first { $0.path == Array("big".utf8) })
    let first = store.key(layer: 0, span: 1).range
    func read(_ offset: UInt64, _ count: Int) throws -> [UInt8] {
      try SpanStore.gather(try store.read(layer: 0, offset: offset, count: count))
    }
    // Span 1 whole and span 2's start (as a warm of a file ending early in span 2 fetches them)...
    store.prefetch(
      [SpanStore.Position(layer: 0, span: 1), SpanStore.Position(layer: 0, span: 2, through: first.upperBound + 1000)],
      concurrency: 2, bytesPerSecond: 0, yieldToReads: false)
    let fetched = source.reads.count
    // ...serve a read from span 1 into span 2 up to there without another request.
    let offset = first.upperBound - 5000
    let bytes = try read(offset, 5900)
    #expect(bytes == Array(content[Int(offset - entry.dataOffset)..<Int(offset - entry.dataOffset) + 5900]))
    #expect(source.reads.count == fetched)
    // Past the start: span 2 is fetched on (only its missing pieces), and the read is right.
    let longer = try read(offset, 200_000)
    #expect(longer == Array(content[Int(offset - entry.dataOffset)..<Int(offset - entry.dataOffset) + 200_000]))
    #expect(source.reads.count == fetched + 1)
  }

  @Test func failuresAreNotCachedAndReadsRecover() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let source = CountingSource(inner)
    let store = SpanStore(
      index: index, source: source, disk: try DiskCache(root: directory + "/cache", limit: 1 << 30), failureMemory: 0.3)
    source.failing = true
    let error = try #require(throws: ClipError.self) { try store.read(layer: 0, offset: 100, count: 10) }
    #expect(error.description.contains("span 0"))
    source.failing = false
    // Right after a failure the same span fails at once (no second wait), then reads work again.
    #expect(throws: ClipError.self) { try store.read(layer: 0, offset: 100, count: 10) }
    #expect(source.reads.count == 1)
    usleep(350_000)
    #expect(try SpanStore.gather(try store.read(layer: 0, offset: 100, count: 10)).count == 10)
    #expect(store.stats.snapshot().failures == 1)
  }

  @Test func profilesRoundTrip() throws {
    let key = SpanKey(layer: Digest.of([1, 2, 3]), range: 4096..<8192)
    let profile = PrefetchProfile(spans: [key, SpanKey(layer: key.layer, range: 0..<4096)])
    #expect(profile.text.hasPrefix("clip-profile 2\n"))
    #expect(try PrefetchProfile(parsing: profile.text) == profile)
    #expect(try PrefetchProfile(parsing: "clip-profile 1\n\(key.layer) 4096-8192\n").spans == [key])
    #expect(throws: ClipError.self) { try PrefetchProfile(parsing: "nonsense") }
  }

  @Test func aRecordedProfileReplaysOnlyWhatWasRead() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let recording = SpanStore(index: index, source: inner, disk: nil, recording: true)
    let span1 = recording.key(layer: 0, span: 1).range
    let span2 = recording.key(layer: 0, span: 2).range
    _ = try recording.read(layer: 0, offset: span1.lowerBound + 100, count: 10)  // the start of span 1
    _ = try recording.read(layer: 0, offset: span2.upperBound - 10, count: 10)  // the end of span 2
    _ = try recording.read(layer: 0, offset: span1.lowerBound + 200, count: 10)
    let profile = try PrefetchProfile(parsing: PrefetchProfile(spans: recording.touchedSpans).text)
    #expect(profile.spans.map(\.range) == [span1.lowerBound..<span1.lowerBound + 210, span2])

    let source = CountingSource(inner)
    let store = SpanStore(
      index: index, source: source, disk: try DiskCache(root: directory + "/cache", limit: 1 << 30))
    let positions = store.positions(of: profile.spans + [SpanKey(layer: Digest.of([9]), range: 0..<10)])
    #expect(
      positions == [
        SpanStore.Position(layer: 0, span: 1, through: span1.lowerBound + 210), SpanStore.Position(layer: 0, span: 2),
      ])
    store.prefetch(positions, concurrency: 2, bytesPerSecond: 0, yieldToReads: false)
    #expect(source.reads.count == 2)
    #expect(source.reads.contains { $0.count < index.layerIndexes[0].compressedRange(ofSpan: 1).count })
    _ = try store.read(layer: 0, offset: span1.lowerBound + 100, count: 10)
    _ = try store.read(layer: 0, offset: span1.lowerBound + 200, count: 10)
    _ = try store.read(layer: 0, offset: span2.upperBound - 10, count: 10)
    #expect(source.reads.count == 2)  // the replayed reads fetch nothing more
    #expect(store.touchedSpans.isEmpty)  // a store not recording notes nothing
  }

  @Test func prefetchFetchesNeighbouringWholeSpansTogether() throws {
    typealias P = SpanStore.Position
    let runs = SpanStore.runs(
      [
        P(layer: 1, span: 7), P(layer: 0, span: 3), P(layer: 0, span: 2), P(layer: 0, span: 4, through: 99),
        P(layer: 0, span: 3), P(layer: 1, span: 8), P(layer: 0, span: 5), P(layer: 0, span: 6), P(layer: 0, span: 7),
        P(layer: 0, span: 8), P(layer: 0, span: 9),
      ],
      longest: 3)
    let described = runs.map {
      "\($0.layer):\($0.spans.lowerBound)-\($0.spans.upperBound)\($0.through.map { "@\($0)" } ?? "")"
    }
    // Listed by their first mention; a span's start and runs longer than 3 stand alone; duplicates go.
    #expect(described == ["1:7-8", "0:2-3", "0:4-4@99", "0:5-7", "0:8-9"])

    defer { try? FileManager.default.removeItem(atPath: directory) }
    let (index, inner) = try image()
    let source = CountingSource(inner)
    let store = SpanStore(index: index, source: source, disk: nil)
    store.prefetch((0..<3).map { P(layer: 0, span: $0) }, concurrency: 4, bytesPerSecond: 0, yieldToReads: false)
    #expect(source.reads.count == 1, "three neighbouring spans, one request")
    #expect(store.stats.snapshot().spansPrefetched == 3)
  }
}
