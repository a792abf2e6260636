import ArgumentParser
import ClipCore
import ClipSnapshotter
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix

/// `clip snapshotter --address SOCK --root DIR`: containerd's proxy snapshotter (specs/snapshotter.md).
struct SnapshotterCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "snapshotter",
    abstract: "Serve containerd's snapshots API on a unix socket (a proxy snapshotter plugin).")

  @Option(help: "The unix socket to listen on.")
  var address = "/run/clip/snapshotter.sock"

  @Option(help: "The snapshotter's state: metadata and snapshot folders.")
  var root = "/var/lib/clip/snapshotter"

  @OptionGroup var registry: RegistryOptions

  func run() throws {
    let snapshotter: Snapshotter
    do {
      let log: @Sendable (String) -> Void = { message in
        FileHandle.standardError.write(Data("\(utcTimestamp()) clip snapshotter: \(message)\n".utf8))
      }
      let lazy = try LazyLayerMounts(root: root + "/lazy", registry: registry, log: log)
      snapshotter = try Snapshotter(root: root, lazy: lazy, log: log)
      snapshotter.restoreLazyLayers()
      try FileManager.default.createDirectory(
        atPath: (address as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
      unlink(address)
    } catch {
      FileHandle.standardError.write(Data("clip: error: \(error)\n".utf8))
      throw ExitCode(1)
    }
    let server = GRPCServer(
      transport: .http2NIOPosix(
        address: .unixDomainSocket(path: address), transportSecurity: .plaintext,
        config: .defaults { $0.rpc.maxRequestPayloadSize = 16 << 20 }),
      services: [SnapshotsService(snapshotter: snapshotter).service])
    FileHandle.standardError.write(Data("\(utcTimestamp()) clip snapshotter: serving \(root) on \(address)\n".utf8))
    // The server runs on Swift's thread pool; this (main) thread only waits for it to end.
    do {
      try runBlocking { try await server.serve() }
    } catch {
      FileHandle.standardError.write(Data("clip: error: the snapshotter stopped: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}
