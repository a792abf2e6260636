import ClipCore

/// Which spans a run of a container touched, in first-touch order, and how far into each its reads went: recorded
/// by `clip mount --record`, replayed by `--prefetch PROFILE` on the next node so those bytes arrive before they are
/// asked for (specs/mount.md, "Prefetch and profiles").
public struct PrefetchProfile: Sendable, Equatable {
  /// The spans, by layer digest and tar-stream range: from the span's start to where the reads in it ended (the
  /// span's end when they went to its end, or for a profile of version 1).
  public var spans: [SpanKey]

  /// Creates a profile.
  public init(spans: [SpanKey]) { self.spans = spans }

  static let header = "clip-profile 2"
  static let headers = ["clip-profile 1", header]

  /// The text form: a header line, then `sha256:<hex> <start>-<end>` per span.
  public var text: String {
    ([Self.header] + spans.map { "\($0.layer) \($0.range.lowerBound)-\($0.range.upperBound)" }).joined(separator: "\n")
      + "\n"
  }

  /// Parses the text form (versions 1 and 2: version 1 lists whole spans).
  public init(parsing text: String) throws {
    var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
    guard let first = lines.first, Self.headers.contains(String(first)) else {
      throw ClipError(.corrupt, "not a clip prefetch profile (it must start with '\(Self.header)')")
    }
    lines.removeFirst()
    spans = try lines.enumerated().map { number, line in
      let fields = line.split(separator: " ")
      let bounds = fields.count == 2 ? fields[1].split(separator: "-") : []
      guard fields.count == 2, bounds.count == 2, let start = UInt64(bounds[0]), let end = UInt64(bounds[1]),
        end > start
      else { throw ClipError(.corrupt, "malformed prefetch profile line \(number + 2): \(line)") }
      return SpanKey(layer: try Digest(String(fields[0])), range: start..<end)
    }
  }
}
