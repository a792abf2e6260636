import Foundation
import Synchronization

/// Counters of a span store: what was fetched, what the caches answered, how long reads took.
///
/// ## Concurrency model
/// Counters are atomics; the latency histogram (log2 buckets of microseconds) is behind a mutex.
public final class StoreStats: Sendable {
  let bytesFetched = Atomic<UInt64>(0)
  let spansFetched = Atomic<UInt64>(0)
  let spanStartsFetched = Atomic<UInt64>(0)
  let requests = Atomic<UInt64>(0)
  let hits = Atomic<UInt64>(0)
  let misses = Atomic<UInt64>(0)
  let failures = Atomic<UInt64>(0)
  let prefetched = Atomic<UInt64>(0)
  let filesCopied = Atomic<UInt64>(0)
  private let passthroughOpens = Atomic<UInt64>(0)
  private let latencies = Mutex<[UInt64]>([UInt64](repeating: 0, count: 40))

  /// Creates zeroed counters.
  public init() {}

  /// Counts an open answered with kernel passthrough (its reads never reach the store).
  public func countPassthroughOpen() { passthroughOpens.add(1, ordering: .relaxed) }

  /// Records one read's latency.
  public func recordRead(nanoseconds: UInt64) {
    let micros = max(nanoseconds / 1000, 1)
    let bucket = min(39, 63 - micros.leadingZeroBitCount)
    latencies.withLock { $0[bucket] += 1 }
  }

  /// A copy of the numbers, with latency percentiles.
  public func snapshot() -> StatsSnapshot {
    let histogram = latencies.withLock { $0 }
    let total = histogram.reduce(0, +)
    func percentile(_ p: Double) -> Double {
      guard total > 0 else { return 0 }
      let rank = UInt64((Double(total) * p).rounded(.up))
      var seen: UInt64 = 0
      for (bucket, count) in histogram.enumerated() {
        seen += count
        if seen >= max(rank, 1) { return Double(UInt64(1) << UInt64(bucket + 1)) / 1000 }  // bucket's upper bound
      }
      return 0
    }
    return StatsSnapshot(
      bytesFetched: bytesFetched.load(ordering: .relaxed), spansFetched: spansFetched.load(ordering: .relaxed),
      spanStartsFetched: spanStartsFetched.load(ordering: .relaxed), requests: requests.load(ordering: .relaxed),
      cacheHits: hits.load(ordering: .relaxed),
      cacheMisses: misses.load(ordering: .relaxed), failures: failures.load(ordering: .relaxed),
      spansPrefetched: prefetched.load(ordering: .relaxed), filesCopied: filesCopied.load(ordering: .relaxed),
      passthroughOpens: passthroughOpens.load(ordering: .relaxed), reads: total, readLatencyP50Ms: percentile(0.5),
      readLatencyP90Ms: percentile(0.9), readLatencyP99Ms: percentile(0.99))
  }
}

/// The numbers `clip stats` shows.
public struct StatsSnapshot: Codable, Sendable, Equatable {
  /// Compressed bytes fetched from the source.
  public var bytesFetched: UInt64
  /// Whole spans fetched (and verified, and decoded).
  public var spansFetched: UInt64
  /// Starts of spans fetched (their first pieces, verified and decoded) for reads near the start of a span.
  public var spanStartsFetched: UInt64
  /// Range requests made.
  public var requests: UInt64
  /// Span lookups answered by a cache.
  public var cacheHits: UInt64
  /// Span lookups that needed a fetch.
  public var cacheMisses: UInt64
  /// Fetches that failed (reads answered with EIO).
  public var failures: UInt64
  /// Spans fetched by prefetching.
  public var spansPrefetched: UInt64
  /// Whole-file copies made in the disk cache (for kernel passthrough).
  public var filesCopied: UInt64
  /// Opens answered with kernel passthrough: their reads go straight to the file's copy, never through `reads`.
  public var passthroughOpens: UInt64
  /// File reads served.
  public var reads: UInt64
  /// Read latency percentiles, milliseconds (upper bound of a power-of-two bucket).
  public var readLatencyP50Ms: Double
  /// 90th percentile.
  public var readLatencyP90Ms: Double
  /// 99th percentile.
  public var readLatencyP99Ms: Double

  /// The same numbers in Prometheus' text exposition format.
  public var prometheus: String {
    let counters: [(String, String, UInt64)] = [
      ("clip_fetched_bytes_total", "Compressed bytes fetched from the image source.", bytesFetched),
      ("clip_fetched_spans_total", "Whole spans fetched, verified and decoded.", spansFetched),
      (
        "clip_fetched_span_starts_total", "Span starts (first pieces) fetched, verified and decoded.", spanStartsFetched
      ),
      ("clip_fetch_requests_total", "Range requests made to the image source.", requests),
      ("clip_cache_hits_total", "Span lookups answered by a cache.", cacheHits),
      ("clip_cache_misses_total", "Span lookups that needed a fetch.", cacheMisses),
      ("clip_fetch_failures_total", "Fetches that failed.", failures),
      ("clip_prefetched_spans_total", "Spans fetched ahead of reads.", spansPrefetched),
      ("clip_file_copies_total", "Whole-file copies made in the disk cache for kernel passthrough.", filesCopied),
      ("clip_passthrough_opens_total", "Opens answered with kernel passthrough.", passthroughOpens),
      ("clip_reads_total", "File reads served.", reads),
    ]
    var text = ""
    for (name, help, value) in counters {
      text += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value)\n"
    }
    text += "# HELP clip_read_latency_ms Read latency percentiles in milliseconds.\n# TYPE clip_read_latency_ms gauge\n"
    for (quantile, value) in [("0.5", readLatencyP50Ms), ("0.9", readLatencyP90Ms), ("0.99", readLatencyP99Ms)] {
      text += "clip_read_latency_ms{quantile=\"\(quantile)\"} \(value)\n"
    }
    return text
  }
}
