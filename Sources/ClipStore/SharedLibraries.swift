import ClipArchive
import ClipCore
import ClipIndex

/// The shared libraries an ELF program needs, as the dynamic loader will look for them: the DT_NEEDED names of its
/// dynamic section (`ELFDynamic`), found in the image's library folders. Reading a program's libraries ahead saves
/// the round trip the loader's open of each would cost, one after the other.
public enum SharedLibraries {
  /// Where the dynamic loader looks for a library of `machine` by default (Debian's multiarch folders first).
  public static func folders(machine: UInt16) -> [String] {
    let multiarch = machine == 183 ? "aarch64-linux-gnu" : "x86_64-linux-gnu"
    return ["/lib/\(multiarch)", "/usr/lib/\(multiarch)", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
  }

  /// Whether `reader`'s index names every program's libraries (format 4 and later), so that `libraries(of:in:)`
  /// fetches nothing.
  public static func recorded(in reader: ImageReader) -> Bool {
    reader.index.layerIndexes.allSatisfy(\.recordsNeededLibraries)
  }

  /// The inodes of the libraries the program or library `inode` names, as found in `reader`'s tree; empty for a file
  /// that is not a dynamically linked ELF file. The names come from the index when it records them, else from the
  /// file's headers, read through `reader` (best cached first).
  public static func libraries(of inode: Int32, in reader: ImageReader) -> [Int32] {
    let tree = reader.tree
    let info = tree.inodes[Int(inode)]
    guard info.layer >= 0 else { return [] }
    let layer = reader.index.layerIndexes[Int(info.layer)]
    let machine: UInt16
    let names: [String]
    if layer.recordsNeededLibraries {
      machine = reader.index.platform.architecture == "arm64" ? 183 : 62
      names = layer.neededLibraries[Int(info.entry)] ?? []
    } else {
      let read = { (offset: UInt64, count: Int) throws -> [UInt8] in
        var bytes: [UInt8] = []
        try reader.read(inode: inode, offset: offset, count: UInt64(count)) { bytes += $0 }
        return bytes
      }
      guard let found = (try? ELFDynamic.needed(read)) ?? nil else { return [] }
      (machine, names) = found
    }
    return names.compactMap { name in
      let candidates = name.contains("/") ? [name] : folders(machine: machine).map { $0 + "/" + name }
      guard let node = candidates.lazy.compactMap({ tree.resolve(Array($0.utf8)) }).first else { return nil }
      let library = tree.nodes[Int(node)].inode
      return tree.inodes[Int(library)].kind == .regular ? library : nil
    }
  }
}
