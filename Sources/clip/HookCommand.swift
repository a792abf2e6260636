import ArgumentParser
import CClipShims
import ClipCore
import ClipFUSE
import ClipOCI
import ClipRuntime
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// `clip hook [STAGE]`: the OCI runtime hook (specs/hook.md).
struct HookCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "hook",
    abstract: "OCI runtime hook: createRuntime/prestart gives the container its image lazily, poststop cleans up.",
    discussion: "Reads the runtime's state JSON on stdin. Without STAGE, the stage follows the state's status.")

  @Argument(help: "createRuntime, prestart or poststop.")
  var stage: String?

  @OptionGroup var options: HookOptions

  func run() throws {
    guard Self.run(stage: stage, settings: options.settings) else { throw ExitCode(1) }
  }

  /// Runs the hook for `stage` on the state JSON from stdin; false (after saying why) when it failed.
  static func run(stage: String?, settings: HookOptions.Settings) -> Bool {
    let input = (try? File(adopting: dup(0), path: "stdin").readToEnd()) ?? []
    var id = "?"
    let log = HookLog(path: settings.root + "/hook.log")
    do {
      let state = try RuntimeState(json: input, what: "the runtime state on stdin")
      id = state.id
      let roots = try settings.containerRoots(log: { log.write("\(state.id): \($0)") })
      switch stage ?? (state.status == "stopped" ? "poststop" : "createRuntime") {
      case "createRuntime", "prestart":
        let path = state.bundle + "/config.json"
        let bytes = try ClipError.inContext(path) { try File.readAll(path) }
        let config = try RuntimeConfig(json: bytes, what: path)
        try roots.create(state: state, config: config)
      case "poststop":
        try roots.teardown(state.id)
      case let other:
        throw ClipError(.invalidArgument, "unknown hook stage '\(other)' (createRuntime, prestart or poststop)")
      }
      return true
    } catch {
      log.write("\(id): error: \(error)")
      tellRuntime("clip hook: container \(id): \(error)\n")
      return false
    }
  }

  /// The hook's command line parsed without ArgumentParser, or nil when it is not a plain hook invocation (help, a
  /// misspelt option: ArgumentParser then says what is wrong). A runtime runs the hook twice per container, and
  /// parsing with ArgumentParser's reflection costs a start of this large binary about a third of its time.
  static func fastStart(_ arguments: ArraySlice<String>) -> (stage: String?, settings: HookOptions.Settings)? {
    guard arguments.first == "hook" else { return nil }
    var rest = arguments.dropFirst()
    var stage: String?
    var settings = HookOptions.Settings()
    while let argument = rest.popFirst() {
      guard argument.hasPrefix("-") else {
        guard stage == nil else { return nil }
        stage = argument
        continue
      }
      let parts = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
      let name = parts[0]
      guard let value = parts.count == 2 ? String(parts[1]) : rest.popFirst() else { return nil }
      switch name {
      case "--root": settings.root = value
      case "--cache-size": settings.cacheSize = value
      case "--keep-warm":
        guard let seconds = Int(value) else { return nil }
        settings.keepWarm = seconds
      default: return nil
      }
    }
    return (stage, settings)
  }
}

extension HookCommand {
  /// Writes a message where the runtime's user sees it: our stderr, which runc shows when a hook fails; crun sends
  /// a hook's stderr to /dev/null (unless told otherwise), so then the message goes to the runtime's own stderr,
  /// through a duplicate of its descriptor so that its next line follows ours.
  static func tellRuntime(_ message: String) {
    let bytes = Array(message.utf8)
    var attributes = stat()
    let discarded =
      fstat(2, &attributes) == 0 && attributes.st_mode & S_IFMT == S_IFCHR
      && attributes.st_rdev == clip_makedev(1, 3)
    let fd = discarded ? clip_duplicate_fd_of(getppid(), 2) : 2
    guard fd >= 0 else { return }
    _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    if fd != 2 { close(fd) }
  }
}

/// The options the hook, `clip bundle` and `clip gc` share.
struct HookOptions: ParsableArguments {
  /// The options' values (and defaults), also filled in by the hook's fast start.
  struct Settings {
    var root = "/var/lib/clip"
    var cacheSize = "10G"
    var keepWarm = 30

    func containerRoots(log: @escaping @Sendable (String) -> Void) throws -> ContainerRoots {
      let layout = try RuntimeLayout(root: root)
      let settings = HookSettings(layout: layout, cacheSize: cacheSize, keepWarm: keepWarm)
      return ContainerRoots(settings: settings, actions: HookWiring.actions(), log: log)
    }
  }

  @Option(help: "The state folder: span cache, indexes, image mounts, container overlays.")
  var root = Settings().root

  @Option(help: "The most bytes the span cache keeps.")
  var cacheSize = Settings().cacheSize

  @Option(help: "Seconds an image stays mounted after its last container goes (org.clip.keep-warm overrides).")
  var keepWarm = Settings().keepWarm

  var settings: Settings { Settings(root: root, cacheSize: cacheSize, keepWarm: keepWarm) }

  func containerRoots(log: @escaping @Sendable (String) -> Void) throws -> ContainerRoots {
    try settings.containerRoots(log: log)
  }
}

/// Appends timestamped lines to the hook's log file.
struct HookLog: Sendable {
  let path: String

  func write(_ message: String) {
    let line = Array("\(utcTimestamp()) [\(getpid())] \(message)\n".utf8)
    let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return }
    _ = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    close(fd)
  }
}

/// What the hook starts, as processes of this executable.
enum HookWiring {
  static func actions() -> HookActions {
    HookActions(
      startMount: { request in
        var arguments = [
          "mount", request.index, request.mountpoint, "--cache", request.cache, "--cache-size", request.cacheSize,
          "--prefetch", request.prefetch, "--source", request.source, "--foreground", "--ready-fd",
          "\(Daemon.readyDescriptor)",
        ]
        arguments += [
          "--lease-root", request.stateRoot, "--lease-image", request.key, "--keep-warm", "\(request.keepWarm)",
        ]
        if request.plainHTTP { arguments.append("--plain-http") }
        if let authFile = request.authFile { arguments += ["--authfile", authFile] }
        for path in request.warm { arguments += ["--warm", path] }
        try FileManager.default.createDirectory(
          atPath: MountService.runtimeDirectory, withIntermediateDirectories: true)
        return try Daemon.spawn(arguments: arguments, log: MountService.logFile(for: request.mountpoint), timeout: 60)
      },
      attach: { request in try AttachStep.run(request) })
  }
}
