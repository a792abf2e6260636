import ArgumentParser
import ClipCore
import ClipIndex
import Foundation

/// `clip inspect IMAGE.clip [--json]`
struct InspectCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "inspect", abstract: "Show an index: layers, spans, entries, sizes.")

  @Argument(help: "The index file.")
  var index: String

  @Flag(help: "Print JSON.")
  var json = false

  @Flag(help: "Measure loading: print the median milliseconds to decode the index and build the merged tree.")
  var loadTime = false

  struct Report: Encodable {
    struct Layer: Encodable {
      var digest: String
      var mediaType: String
      var compression: String
      var compressedSize: UInt64
      var uncompressedSize: UInt64
      var diffID: String
      var spans: Int
      var entries: Int
      var indexBytes: Int
    }
    var source: String
    var manifestDigest: String
    var platform: String
    var configDigest: String
    var entrypoint: [String]?
    var cmd: [String]?
    var env: [String]?
    var workingDir: String?
    var user: String?
    var layers: [Layer]
    var mergedEntries: Int
    var indexBytes: Int
    var imageFrameBytes: Int
    var uncompressedImageBytes: UInt64
  }

  func run() throws {
    try reportingErrors {
      if loadTime { return try measureLoad() }
      let bytes = try ClipError.inContext(index) { try File.readAll(index) }
      let image = try ClipError.inContext(index) { try IndexFormat.decodeImage(bytes) }
      let frames = try IndexFormat.frameSizes(bytes)
      let tree = try MergedTree(layers: image.layerIndexes)
      let layers = image.layerIndexes.enumerated().map { i, layer in
        Report.Layer(
          digest: layer.digest.description, mediaType: image.layers[i].mediaType,
          compression: layer.compression.description, compressedSize: layer.compressedSize,
          uncompressedSize: layer.uncompressedSize, diffID: layer.diffID.description, spans: layer.spanCount,
          entries: layer.entries.count, indexBytes: frames[i + 1].stored)
      }
      let run = image.runConfig
      let report = Report(
        source: image.source, manifestDigest: image.manifestDigest.description, platform: image.platform.description,
        configDigest: image.configDigest.description, entrypoint: run.entrypoint, cmd: run.cmd, env: run.env,
        workingDir: run.workingDir, user: run.user, layers: layers, mergedEntries: tree.nodes.count,
        indexBytes: bytes.count, imageFrameBytes: frames[0].stored,
        uncompressedImageBytes: image.layerIndexes.reduce(0) { $0 + $1.uncompressedSize })
      if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeOut(Array(try encoder.encode(report)) + [10])
        return
      }
      var out = """
        source:     \(report.source)
        manifest:   \(report.manifestDigest)
        platform:   \(report.platform)
        config:     \(report.configDigest)
        entrypoint: \(run.entrypoint ?? [])  cmd: \(run.cmd ?? [])

        """
      out += "layer  digest                compression    compressed      tar bytes   spans   entries  index bytes\n"
      for (i, layer) in layers.enumerated() {
        let columns = [
          pad(i + 1, 5), " ", layer.digest.prefix(19).padding(toLength: 21, withPad: " ", startingAt: 0),
          layer.compression.padding(toLength: 11, withPad: " ", startingAt: 0), pad(layer.compressedSize, 13),
          pad(layer.uncompressedSize, 15), pad(layer.spans, 8), pad(layer.entries, 10), pad(layer.indexBytes, 13),
        ]
        out += columns.joined() + "\n"
      }
      let percent = Double(bytes.count) * 100 / Double(max(report.uncompressedImageBytes, 1))
      out += "merged tree: \(report.mergedEntries) entries\n"
      out += String(
        format: "index: %d bytes (image part %d bytes), %.3f%% of the uncompressed image\n", bytes.count,
        report.imageFrameBytes, percent)
      try writeOut(Array(out.utf8))
    }
  }

  private func pad(_ value: some BinaryInteger, _ width: Int) -> String {
    let text = String(value)
    return String(repeating: " ", count: max(0, width - text.count)) + text
  }

  private func measureLoad() throws {
    var total: [Double] = []
    var decode: [Double] = []
    for _ in 0..<9 {
      let start = DispatchTime.now().uptimeNanoseconds
      let image = try IndexFormat.decodeImage(try File.readAll(index))
      let decoded = DispatchTime.now().uptimeNanoseconds
      let tree = try MergedTree(layers: image.layerIndexes)
      precondition(!tree.nodes.isEmpty)
      let end = DispatchTime.now().uptimeNanoseconds
      total.append(Double(end - start) / 1e6)
      decode.append(Double(decoded - start) / 1e6)
    }
    total.sort()
    decode.sort()
    let line = String(format: "load-ms %.2f (decode %.2f)\n", total[total.count / 2], decode[decode.count / 2])
    try writeOut(Array(line.utf8))
  }
}
