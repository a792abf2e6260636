import ArgumentParser

#if canImport(Glibc)
  import Glibc
#endif

/// `clip`: start containers from OCI images before they are downloaded.
@main
struct Clip: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Index OCI images and read them lazily, before they are downloaded.",
    subcommands: [
      IndexCommand.self, InspectCommand.self, ListCommand.self, CatCommand.self, ExtractCommand.self, MountCommand.self,
      UmountCommand.self, StatsCommand.self, BundleCommand.self, HookCommand.self, GCCommand.self,
      SnapshotterCommand.self, PullCommand.self,
    ])

  static func main() {
    // A write to a closed pipe (a consumer that stopped reading a blob stream) must be an error, not a kill.
    signal(SIGPIPE, SIG_IGN)
    // (The root command stays synchronous: an async main would start Swift's thread pool in every command, and its
    // threads would take the signals the FUSE loop waits for.)
    // These two end with _exit: a request may still be inside libcurl on another thread (a failed start does not wait
    // for the published-index lookup or the warm wave), and exit() would run the libraries' destructors under it.
    if let hook = HookCommand.fastStart(CommandLine.arguments.dropFirst()) {
      let succeeded = HookCommand.run(stage: hook.stage, settings: hook.settings)
      fflush(nil)
      Glibc._exit(succeeded ? 0 : 1)
    }
    if let daemon = MountDaemon.fastStart(CommandLine.arguments.dropFirst()) {
      do { try reportingErrors { try daemon.serve() } } catch {}
      fflush(nil)
      Glibc._exit(1)
    }
    main(nil)
  }
}
