/// The labels of containerd's remote-snapshotter protocol, and the layer identity CRI's unpacker (and `clip pull`)
/// put on the snapshots it prepares (specs/snapshotter.md).
public enum RemoteLabels {
  /// The chain ID the snapshot will be committed as (set by containerd's unpacker).
  public static let targetRef = "containerd.io/snapshot.ref"
  /// Marks a snapshot whose contents come from elsewhere (set by the snapshotter).
  public static let remote = "containerd.io/snapshot/remote"
  /// The image reference (CRI).
  public static let imageRef = "containerd.io/snapshot/cri.image-ref"
  /// The image manifest digest (CRI).
  public static let manifestDigest = "containerd.io/snapshot/cri.manifest-digest"
  /// The compressed layer's digest (CRI).
  public static let layerDigest = "containerd.io/snapshot/cri.layer-digest"
  /// The image's layers, comma-separated (CRI).
  public static let imageLayers = "containerd.io/snapshot/cri.image-layers"
  /// The digest of the clip index published for the image (clip's own, set by `clip pull`): the snapshotter fetches
  /// it straight, without looking it up.
  public static let indexBlob = "containerd.io/snapshot/clip.index-blob"
  /// That index blob's size in bytes (clip's own, with `indexBlob`).
  public static let indexSize = "containerd.io/snapshot/clip.index-size"
  /// The digest of the prefetch profile published with that index, if any (clip's own, set by `clip pull`).
  public static let profileBlob = "containerd.io/snapshot/clip.profile-blob"
  /// That profile blob's size in bytes (clip's own, with `profileBlob`).
  public static let profileSize = "containerd.io/snapshot/clip.profile-size"
}

/// The labels containerd's garbage collector follows from an image to what it needs: content refers to content
/// (an index to its manifests, a manifest to its config and layers) and a config to the image's top snapshot.
public enum GarbageCollectionLabels {
  /// `containerd.io/gc.ref.content.KIND.N` (or without `.N`): a reference to the content with that digest.
  public static func content(_ kind: String, _ number: Int? = nil) -> String {
    "containerd.io/gc.ref.content.\(kind)" + (number.map { ".\($0)" } ?? "")
  }
  /// `containerd.io/gc.ref.snapshot.SNAPSHOTTER`: a reference to a snapshot by name.
  public static func snapshot(_ snapshotter: String) -> String { "containerd.io/gc.ref.snapshot.\(snapshotter)" }
  /// Makes content or a lease expire at an RFC 3339 time (containerd's collector removes it after).
  public static let expire = "containerd.io/gc.expire"
}
