import ClipCore
import ClipIndex

/// Fetches the files a program about to start will read (`clip mount --warm`), while its container is still being
/// set up: the named files' spans and those of the shared libraries they need (`SharedLibraries`), eight requests at
/// once (up to sixteen neighbouring whole spans with one request, each served as soon as it is in; a file's last span
/// only up to its end, as a read of the file would), every file's first span first, then every last one, then the
/// rest.
/// When the index records every program's libraries (format 4) all go in one wave; otherwise the libraries are read
/// from the programs' headers, level by level, each level once the one before is cached. Reading each file whole
/// instead cost a round trip per span, and the dynamic loader's open of each library one more, one after the other.
public enum Warming {
  /// Requests in flight at once.
  static let concurrency = 8
  /// Whole spans fetched with one request: a request's spans serve as they arrive, so a long one holds nothing up
  /// and saves the round trips of many short ones.
  static let longestRun = 16
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
    var pending = names[...]
    while let name = pending.popFirst() {
      let candidates = name.contains("/") ? [name] : search.map { $0 + "/" + name }
      for candidate in candidates {
        guard let node = tree.resolve(Array(candidate.utf8)) else { continue }
        let inode = tree.nodes[Int(node)].inode
        guard tree.inodes[Int(inode)].kind == .regular else { continue }
        if !found.contains(inode) {
          found.append(inode)
          pending += interpreterStartup(ofProgramAt: tree.path(of: node), in: tree)
        }
        break
      }
    }
    return found
  }

  /// What every start of a CPython 3 interpreter reads besides its binary and libraries, for a program whose path
  /// resolves to `PREFIX/bin/pythonX.Y`: its `encodings` package (`__init__`, `aliases`, and `utf_8`, the codec of
  /// the file system encoding) and the distribution's `sitecustomize` where it has one (Debian's, Ubuntu's), under
  /// `PREFIX/lib/pythonX.Y` — each module compiled (`__pycache__/NAME.cpython-XY.pyc`) where the image has that, else
  /// its source (images that delete compiled files). Empty for any other program. Without this each of them costs a
  /// python start one more round trip to the registry, one after the other.
  static func interpreterStartup(ofProgramAt path: [UInt8], in tree: MergedTree) -> [String] {
    let parts = path.split(separator: UInt8(ascii: "/")).map { String(decoding: $0, as: UTF8.self) }
    guard parts.count >= 2, parts[parts.count - 2] == "bin", let name = parts.last, name.hasPrefix("python") else {
      return []
    }
    let version = name.dropFirst("python".count).split(separator: ".", omittingEmptySubsequences: false)
    guard version.count == 2, version[0] == "3",
      version.allSatisfy({ !$0.isEmpty && $0.allSatisfy { ("0"..."9").contains($0) } })
    else { return [] }
    let library = "/" + (parts.dropLast(2) + ["lib", name]).joined(separator: "/")
    let compiledSuffix = ".cpython-\(version.joined()).pyc"
    let modules = [
      ("encodings", "__init__"), ("encodings", "aliases"), ("encodings", "utf_8"), ("", "sitecustomize"),
    ]
    return modules.compactMap { package, module in
      let folder = package.isEmpty ? library : library + "/" + package
      let compiled = folder + "/__pycache__/" + module + compiledSuffix
      if tree.resolve(Array(compiled.utf8)) != nil { return compiled }
      let source = folder + "/" + module + ".py"
      return tree.resolve(Array(source.utf8)) != nil ? source : nil
    }
  }

  /// Fetches `files` and the libraries they need; returns how many libraries that was.
  public static func fetch(_ files: [Int32], in reader: ImageReader) -> Int {
    let fetch = { (inodes: [Int32]) in
      // What a start reads first goes first (the link is shared): every file's first span (a small file whole, a
      // program's headers), then every last span (where a program's dynamic section and data are), then the rest.
      let files = inodes.map { reader.store.positions(ofFile: $0, in: reader.tree, partialEnd: true) }
      let positions =
        files.compactMap(\.first) + files.compactMap { $0.count > 1 ? $0.last : nil }
        + files.flatMap { $0.dropFirst().dropLast() }
      reader.store.prefetch(
        positions, concurrency: concurrency, bytesPerSecond: 0, yieldToReads: false, longestRun: longestRun)
    }
    let recorded = SharedLibraries.recorded(in: reader)
    var level = files
    var wave = files  // what the one fetch brings when the index names the libraries
    var seen = Set(files)
    var libraries = 0
    if !recorded { fetch(level) }
    for _ in 0..<depth {
      level = level.flatMap { SharedLibraries.libraries(of: $0, in: reader) }.filter { seen.insert($0).inserted }
      guard !level.isEmpty else { break }
      libraries += level.count
      if recorded { wave += level } else { fetch(level) }
    }
    if recorded { fetch(wave) }
    return libraries
  }
}
