import ClipCore
import ClipIndex

/// Fetches the files a program about to start will read (`clip mount --warm`), while its container is still being
/// set up: the named files' spans, eight requests at once (neighbouring whole spans together, a file's last span only
/// up to its end, as a read of the file would), then the shared libraries they need (`SharedLibraries`), level by
/// level, each level once the one before is cached. Reading each file whole instead cost a round trip per span, and
/// the dynamic loader's open of each library one more, one after the other.
public enum Warming {
  /// Requests in flight at once.
  static let concurrency = 8
  /// Levels of libraries followed (a program's, theirs, …).
  static let depth = 4

  /// The regular files `names` name in `reader`'s image: a name without `/` is looked up on the image's `PATH` (its
  /// config's, else the usual one), symlinks are followed, names the image does not have are skipped.
  public static func files(named names: [String], in reader: ImageReader) -> [Int32] {
    let tree = reader.tree
    var search = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
    if let path = reader.index.runConfig.env?.last(where: { $0.hasPrefix("PATH=") }) {
      search = path.dropFirst(5).split(separator: ":").map(String.init)
    }
    var found: [Int32] = []
    for name in names {
      let candidates = name.contains("/") ? [name] : search.map { $0 + "/" + name }
      for candidate in candidates {
        guard let node = tree.resolve(Array(candidate.utf8)) else { continue }
        let inode = tree.nodes[Int(node)].inode
        guard tree.inodes[Int(inode)].kind == .regular else { continue }
        if !found.contains(inode) { found.append(inode) }
        break
      }
    }
    return found
  }

  /// Fetches `files` and the libraries they need; returns how many libraries that was.
  public static func fetch(_ files: [Int32], in reader: ImageReader) -> Int {
    let fetch = { (inodes: [Int32]) in
      let positions = inodes.flatMap { reader.store.positions(ofFile: $0, in: reader.tree, partialEnd: true) }
      reader.store.prefetch(positions, concurrency: concurrency, bytesPerSecond: 0, yieldToReads: false)
    }
    var level = files
    var seen = Set(files)
    var libraries = 0
    fetch(level)
    for _ in 0..<depth {
      level = level.flatMap { SharedLibraries.libraries(of: $0, in: reader) }.filter { seen.insert($0).inserted }
      guard !level.isEmpty else { break }
      libraries += level.count
      fetch(level)
    }
    return libraries
  }
}
