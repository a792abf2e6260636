import CClipShims
import CZlib
import CZstd
import Foundation

/// Builds tar streams for tests: ustar headers, PAX records, GNU long names, any entry type.
public struct TarBuilder {
  public private(set) var bytes: [UInt8] = []

  public init() {}

  /// Appends one entry (its header, optional extended headers, and data).
  public mutating func add(
    _ name: String, type: Character = "0", mode: Int = 0o644, uid: Int = 0, gid: Int = 0, mtime: Int = 1_600_000_000,
    data: [UInt8] = [], link: String = "", major: Int = 0, minor: Int = 0, pax: [String: String] = [:],
    gnuLongName: Bool = false, rawName: [UInt8]? = nil
  ) {
    var nameBytes = rawName ?? Array(name.utf8)
    if !pax.isEmpty {
      var records: [UInt8] = []
      for (key, value) in pax.sorted(by: { $0.key < $1.key }) {
        let body = " \(key)=\(value)\n"
        var length = body.utf8.count + 1
        while String(length).count + body.utf8.count != length { length = String(length).count + body.utf8.count }
        records += Array("\(length)\(body)".utf8)
      }
      header(Array("PaxHeader".utf8), type: "x", size: records.count)
      appendData(records)
    }
    if gnuLongName {
      header(Array("././@LongLink".utf8), type: "L", size: nameBytes.count + 1)
      appendData(nameBytes + [0])
      nameBytes = Array(nameBytes.prefix(99))
    }
    header(
      nameBytes, type: type, mode: mode, uid: uid, gid: gid, size: type == "0" ? data.count : 0, mtime: mtime,
      link: Array(link.utf8.prefix(100)), major: major, minor: minor)
    if type == "0" { appendData(data) }
  }

  /// Appends a raw 512-byte block.
  public mutating func addRaw(_ block: [UInt8]) { bytes += block }

  /// Appends the end-of-archive marker.
  public mutating func finish() -> [UInt8] {
    bytes += [UInt8](repeating: 0, count: 1024)
    return bytes
  }

  public mutating func header(
    _ name: [UInt8], type: Character, mode: Int = 0o644, uid: Int = 0, gid: Int = 0, size: Int, mtime: Int = 0,
    link: [UInt8] = [], major: Int = 0, minor: Int = 0, corruptChecksum: Bool = false, sizeField: [UInt8]? = nil
  ) {
    var block = [UInt8](repeating: 0, count: 512)
    func put(_ field: [UInt8], _ offset: Int) { for (i, b) in field.enumerated() { block[offset + i] = b } }
    func octal(_ value: Int, _ width: Int) -> [UInt8] {
      Array(String(value, radix: 8).leftPadded(width - 1).utf8) + [0]
    }
    put(Array(name.prefix(100)), 0)
    put(octal(mode, 8), 100)
    put(octal(uid, 8), 108)
    put(octal(gid, 8), 116)
    put(sizeField ?? octal(size, 12), 124)
    put(octal(mtime, 12), 136)
    block[156] = type.asciiValue ?? 48
    put(link, 157)
    put(Array("ustar\0".utf8) + Array("00".utf8), 257)
    put(octal(major, 8), 329)
    put(octal(minor, 8), 337)
    put([UInt8](repeating: 32, count: 8), 148)
    var sum = block.reduce(0) { $0 + Int($1) }
    if corruptChecksum { sum += 1 }
    put(Array(String(sum, radix: 8).leftPadded(6).utf8) + [0, 32], 148)
    bytes += block
  }

  public mutating func appendData(_ data: [UInt8]) {
    bytes += data
    bytes += [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
  }
}

extension String {
  func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// Compression helpers for building test layers.
public enum Compress {
  /// gzip with zlib at `level`.
  public static func gzip(_ data: [UInt8], level: Int32 = 6) -> [UInt8] {
    var stream = z_stream()
    _ = clip_deflate_init_gzip(&stream, level)
    defer { deflateEnd(&stream) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(data.count))) + 64)
    var input = data
    let produced = input.withUnsafeMutableBufferPointer { source in
      out.withUnsafeMutableBufferPointer { target in
        stream.next_in = source.baseAddress
        stream.avail_in = UInt32(source.count)
        stream.next_out = target.baseAddress
        stream.avail_out = UInt32(target.count)
        _ = deflate(&stream, Z_FINISH)
        return target.count - Int(stream.avail_out)
      }
    }
    return Array(out.prefix(produced))
  }

  /// zstd, one frame per `frameSize` bytes of input.
  public static func zstd(_ data: [UInt8], frameSize: Int = Int.max, level: Int32 = 3) -> [UInt8] {
    var out: [UInt8] = []
    var start = 0
    repeat {
      let chunk = Array(data[start..<min(data.count, start &+ frameSize)])
      var frame = [UInt8](repeating: 0, count: ZSTD_compressBound(chunk.count))
      let size = frame.withUnsafeMutableBytes { target in
        chunk.withUnsafeBytes { ZSTD_compress(target.baseAddress, target.count, $0.baseAddress, $0.count, level) }
      }
      out += frame.prefix(size)
      start = min(data.count, start &+ frameSize)
    } while start < data.count
    return out
  }
}

/// Deterministic pseudo-random bytes with a tunable share of compressible text.
public func testData(count: Int, seed: UInt64) -> [UInt8] {
  var state = seed &+ 0x9E37_79B9_7F4A_7C15
  var out = [UInt8]()
  out.reserveCapacity(count)
  let words = ["layer", "span", "clip", "index", "gzip", "window", "tar", "entry", "\n", " "].map { Array($0.utf8) }
  while out.count < count {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    let r = state >> 33
    if r % 4 == 0 {
      out.append(UInt8(truncatingIfNeeded: r >> 8))
    } else {
      out += words[Int(r % UInt64(words.count))]
    }
  }
  return Array(out.prefix(count))
}
