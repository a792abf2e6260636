import ArgumentParser

/// `clip`: start containers from OCI images before they are downloaded.
@main
struct Clip: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Index OCI images and read them lazily, before they are downloaded.",
    subcommands: [IndexCommand.self, InspectCommand.self, ListCommand.self, CatCommand.self, ExtractCommand.self])
}
