import ArgumentParser
import ClipStore

/// `clip extract IMAGE.clip DIR`
struct ExtractCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "extract",
    abstract: "Write the image's merged root filesystem to a directory, reading every file through the index.")

  @Argument(help: "The index file.")
  var index: String

  @Argument(help: "The directory to create (or an empty one).")
  var directory: String

  @Option(help: "Read blobs from this source instead of the one the index recorded.")
  var source: String?

  func run() throws {
    try reportingErrors {
      let reader = try openReader(index, source: source)
      try Extractor(reader: reader).extract(to: directory)
    }
  }
}
