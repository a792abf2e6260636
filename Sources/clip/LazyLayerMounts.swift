import ClipContainerd
import ClipCore
import ClipFUSE
import ClipRegistry
import ClipRuntime
import ClipSnapshotter
import ContainerdAPI
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The snapshotter's lazy layers: the image's index is found (or made) as the hook does, in a state folder of the
/// snapshotter's own, and the layer is served in overlay form by a detached `clip mount --layer` daemon, which
/// outlives a restart of the snapshotter.
struct LazyLayerMounts: LazyLayers {
  let roots: ContainerRoots
  let layout: RuntimeLayout
  /// Annotations every image request gets: how to reach registries (plain HTTP, credentials).
  let registryAnnotations: [String: String]

  init(root: String, registry: RegistryOptions, log: @escaping @Sendable (String) -> Void) throws {
    var annotations: [String: String] = [:]
    if registry.plainHTTP { annotations[Annotation.plainHTTP] = "true" }
    if let authfile = registry.authfile { annotations[Annotation.authFile] = authfile }
    registryAnnotations = annotations
    layout = try RuntimeLayout(root: root)
    roots = ContainerRoots(
      settings: HookSettings(layout: layout, cacheSize: "10G", keepWarm: 0), actions: HookWiring.actions(), log: log)
  }

  func mount(labels: [String: String], at path: String) throws {
    guard let reference = labels[RemoteLabels.imageRef], let layer = labels[RemoteLabels.layerDigest] else {
      throw ClipError(.invalidArgument, "no \(RemoteLabels.imageRef) and \(RemoteLabels.layerDigest) labels")
    }
    let annotations = registryAnnotations.merging([Annotation.image: reference]) { $1 }
    guard var request = try ImageRequest(annotations: annotations) else { return }
    let manifest = try labels[RemoteLabels.manifestDigest].map { text in
      try ClipError.inContext("label \(RemoteLabels.manifestDigest)") { try Digest(text) }
    }
    request.manifestDigest = manifest
    request.published = try PublishedIndex.Blobs(labels, keys: .remoteLabels)
    let index = try roots.index(for: request)
    if let manifest {
      let indexed = try loadIndex(index).manifestDigest
      guard indexed == manifest else {
        throw ClipError(.notFound, "\(reference) is \(indexed) now, the labels ask for \(manifest)")
      }
    }
    try FileManager.default.createDirectory(atPath: MountService.runtimeDirectory, withIntermediateDirectories: true)
    try Daemon.spawn(
      arguments: [
        "mount", index, path, "--layer", layer, "--cache", layout.cache, "--source", reference, "--foreground",
        "--ready-fd", "\(Daemon.readyDescriptor)", "--prefetch", RuntimeLayout.prefetch("auto", index: index),
      ] + StartupFiles.common.flatMap { ["--warm", $0] }, log: MountService.logFile(for: path), timeout: 120)
  }

  func unmount(_ path: String) {
    if umount2(path, 0) != 0 { _ = umount2(path, Int32(MNT_DETACH)) }
  }
}
