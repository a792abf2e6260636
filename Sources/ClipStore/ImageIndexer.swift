import ClipArchive
import ClipCore
import ClipIndex
import ClipOCI
import ClipRegistry
import Dispatch
import Synchronization

/// Indexes an image: resolves its manifest, scans every layer once (several at a time), verifies each layer's
/// blob digest and diff ID, and assembles the image index.
public struct ImageIndexer: Sendable {
  /// Output bytes between checkpoints: a read costs decoding its span from the start up to it, and every span's
  /// checkpoint keeps what it reads of its window (about 2 KiB compressed in the index).
  public var spanSize: UInt64 = 512 << 10
  /// The platform to pick from a multi-platform image.
  public var platform: Platform = .current
  /// Layers scanned at once.
  public var parallelism: Int = max(1, System.coreCount)
  /// A directory of layer indexes keyed by layer digest and span size, reused across images; nil for none.
  public var layerCache: String?
  /// Called with (blob bytes read so far, total blob bytes) while scanning.
  public var progress: (@Sendable (UInt64, UInt64) -> Void)?
  /// Look for an index published beside the image in its registry, and use it instead of scanning the layers.
  public var usePublished = true
  /// Told what the indexer decided along the way (a published index used or passed over).
  public var note: (@Sendable (String) -> Void)?

  /// Creates an indexer with the defaults.
  public init() {}

  /// Indexes the image `source` names (`image`: its manifest and config, if already resolved).
  public func index(_ source: any ImageSource, image resolved: ResolvedImage? = nil) throws -> ImageIndex {
    let image = try resolved ?? source.resolve(platform: platform)
    if usePublished, let registry = source as? RegistrySource, let published = published(registry, image: image) {
      var index = published.index
      index.source = registry.name
      return index
    }
    return try scan(source, image)
  }

  /// Indexes like `index` and returns the index file's bytes — a published index's bytes as the registry gave them
  /// (checked as `index` checks them, but for its layer frames, which are only checked intact: a mount decodes them;
  /// its recorded source is the publisher's), else the new index encoded — and the
  /// prefetch profile published with the index, if any. `lookup` is what looking for the published index already
  /// found (`RegistrySource.findPublishedBlobs`, started while the config was fetched), if it was looked for.
  public func indexFile(
    _ source: any ImageSource, image resolved: ResolvedImage? = nil,
    lookup: Result<PublishedIndex.Blobs?, any Error>? = nil
  ) throws -> (index: [UInt8], profile: [UInt8]?) {
    let image = try resolved ?? source.resolve(platform: platform)
    if usePublished, let registry = source as? RegistrySource,
      let published = published(registry, image: image, lookup: lookup, decodeLayers: false)
    {
      return (published.bytes, published.profile)
    }
    return (IndexFormat.encode(try scan(source, image)), nil)
  }

  /// Scans the image's layers.
  private func scan(_ source: any ImageSource, _ image: ResolvedImage) throws -> ImageIndex {
    let descriptors = image.manifest.layers
    let layers = try descriptors.enumerated().map { i, descriptor in
      guard LayerCompression(mediaType: descriptor.mediaType) != nil else {
        throw ClipError(.unsupported, "layer \(i + 1) (\(descriptor.digest)) has media type \(descriptor.mediaType)")
      }
      return ImageLayer(
        mediaType: descriptor.mediaType, digest: descriptor.digest, size: UInt64(max(descriptor.size, 0)),
        diffID: image.config.rootfs.diffIDs[i])
    }
    let total = layers.reduce(0) { $0 + $1.size }
    let done = ByteCounter()
    let results = Mutex<[Int: Result<LayerIndex, ClipError>]>([:])
    let next = Atomic<Int>(0)
    let workers = min(parallelism, max(layers.count, 1))
    DispatchQueue.concurrentPerform(iterations: workers) { _ in
      while true {
        let i = next.add(1, ordering: .relaxed).oldValue
        guard i < layers.count else { return }
        if results.withLock({ $0.values.contains { if case .failure = $0 { true } else { false } } }) { return }
        let result: Result<LayerIndex, ClipError>
        do {
          result = .success(try indexLayer(layers[i], number: i + 1, source: source, done: done, total: total))
        } catch let error as ClipError {
          result = .failure(error)
        } catch {
          result = .failure(ClipError(.system, "\(error)").adding("layer \(i + 1) (\(layers[i].digest))"))
        }
        results.withLock { $0[i] = result }
      }
    }
    let collected = results.withLock { $0 }.sorted { $0.key < $1.key }
    for (_, result) in collected { if case .failure(let error) = result { throw error } }
    let layerIndexes = try collected.map { try $0.value.get() }
    guard layerIndexes.count == layers.count else { throw ClipError(.system, "not every layer was indexed") }
    return ImageIndex(
      source: source.name, manifestDigest: image.manifestDigest, manifestMediaType: image.manifestMediaType,
      platform: image.platform, configDigest: image.configDigest, runConfig: image.config.config ?? .init(),
      layers: layers, layerIndexes: layerIndexes)
  }

  /// The index published for the image, if there is one that belongs to it (said through `note` either way), with
  /// the profile published with it (one that cannot be fetched is left out, and said so). With `lookup`, the blobs
  /// were looked for already (a failed lookup is tried again). `decodeLayers`: as `publishedIndex`.
  private func published(
    _ registry: RegistrySource, image: ResolvedImage, lookup: Result<PublishedIndex.Blobs?, any Error>? = nil,
    decodeLayers: Bool = true
  ) -> (index: ImageIndex, bytes: [UInt8], profile: [UInt8]?)? {
    var blobs: PublishedIndex.Blobs?
    if case .success(let found)? = lookup {
      guard let found else { return nil }  // none published
      blobs = found
    }
    guard
      let found = publishedIndex(
        registry, manifest: image.manifestDigest, blobs: blobs, decodeLayers: decodeLayers)
    else { return nil }
    guard found.index.layers.map(\.digest) == image.manifest.layers.map(\.digest),
      found.index.layers.map(\.diffID) == image.config.rootfs.diffIDs
    else {
      note?("the index published for \(image.manifestDigest) describes another image: not using it")
      return nil
    }
    return found
  }

  /// The index published for the image manifest `manifest` (its blobs looked up, unless `blobs` names them) and the
  /// profile published with it, as the registry gave them, once the index is found to name that manifest; nil when
  /// none is published or it is unusable. Says which through `note`; a profile that cannot be had is left out, and
  /// said so. Without `decodeLayers` the layer frames are only checked (`IndexFormat.decodeImageHeader`) and the
  /// index returned has no layer indexes: for a caller that keeps the bytes for a mount, which decodes them.
  public func publishedIndex(
    _ registry: RegistrySource, manifest: Digest, blobs: PublishedIndex.Blobs? = nil, decodeLayers: Bool = true
  ) -> (index: ImageIndex, bytes: [UInt8], profile: [UInt8]?)? {
    do {
      guard let blobs = try blobs ?? registry.findPublishedBlobs(subject: manifest) else { return nil }
      let (bytes, fetchedProfile) = try registry.publishedIndexAndProfile(blobs)
      let index = try decodeLayers ? IndexFormat.decodeImage(bytes) : IndexFormat.decodeImageHeader(bytes)
      guard index.manifestDigest == manifest else {
        note?("the index published for \(manifest) describes \(index.manifestDigest): not using it")
        return nil
      }
      var profile: [UInt8]?
      switch fetchedProfile {
      case .success(let bytes)?: profile = bytes
      case .failure(let error)?: note?("the profile published for \(manifest) is unusable (\(error)): going without")
      case nil: break
      }
      note?("using the index published for \(manifest)" + (profile == nil ? "" : ", with its profile"))
      return (index, bytes, profile)
    } catch {
      note?("the index published for \(manifest) is unusable (\(error)): not using it")
      return nil
    }
  }

  private func indexLayer(
    _ layer: ImageLayer, number: Int, source: any ImageSource, done: ByteCounter, total: UInt64
  ) throws -> LayerIndex {
    try ClipError.inContext("layer \(number) (\(layer.digest))") {
      let cachePath = layerCache.map { "\($0)/\(layer.digest.hex).\(spanSize).layer" }
      if let cachePath, let bytes = try? File.readAll(cachePath), let cached = try? IndexFormat.decodeLayer(bytes),
        cached.digest == layer.digest, cached.diffID == layer.diffID
      {
        done.add(layer.size)
        return cached
      }
      guard let compression = LayerCompression(mediaType: layer.mediaType) else {
        throw ClipError(.unsupported, "media type \(layer.mediaType) is not a layer")
      }
      let scanner = LayerScanner(compression: compression, spanSize: spanSize)
      var reported: UInt64 = 0
      if let progress {
        scanner.progress = { bytes in
          let sum = done.add(bytes - reported)
          reported = bytes
          progress(sum, total)
        }
      }
      let scan = try source.withBlobStream(layer.digest) { read in try scanner.scan(read) }
      done.add(scan.compressedSize - min(reported, scan.compressedSize))
      guard scan.compressedSize == layer.size else {
        throw ClipError(.corrupt, "layer blob is \(scan.compressedSize) bytes, the manifest says \(layer.size)")
      }
      let index = try LayerIndex(scan: scan, digest: layer.digest, diffID: layer.diffID, spanSize: spanSize)
      if let cachePath { try? File.writeAtomically(cachePath, IndexFormat.encode(index)) }
      return index
    }
  }
}
