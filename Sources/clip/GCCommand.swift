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
    abstract: "Remove what containers that no longer run left behind; unmount images no container uses.")

  @OptionGroup var options: HookOptions

  @Flag(help: "Unmount every unused image now, even within its keep-warm time.")
  var force = false

  @Option(help: "Wait this many seconds first (the hook starts such a gc to release an image kept warm).")
  var after = 0

  func run() throws {
    try reportingErrors {
      if after > 0 { sleep(UInt32(after)) }
      let log = HookLog(path: options.root + "/hook.log")
      let roots = try options.containerRoots(log: { log.write("gc: \($0)") })
      for line in try roots.collectGarbage(force: force) { print("removed \(line)") }
    }
  }
}
