import ArgumentParser
import ClipCore
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// `clip gc`: removes what crashed containers left, and unmounts images no container uses.
struct GCCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "gc",
    abstract: "Remove what containers that no longer run left behind, and dead image mounts.")

  @OptionGroup var options: HookOptions

  @Flag(help: "Also unmount every image no container uses, even within its keep-warm time.")
  var force = false

  func run() throws {
    try reportingErrors {
      // A root that does not exist has nothing to collect (and is not made here: a mistyped --root stays visible).
      guard FileManager.default.fileExists(atPath: options.root) else {
        FileHandle.standardError.write(Data("clip: nothing to collect: \(options.root) does not exist\n".utf8))
        return
      }
      let log = HookLog(path: options.root + "/hook.log")
      let roots = try options.containerRoots(log: { log.write("gc: \($0)") })
      for line in try roots.collectGarbage(force: force) { print("removed \(line)") }
    }
  }
}
