import ClipCore
import ClipIndex

/// The shared libraries an ELF program needs, as the dynamic loader will look for them: the DT_NEEDED names of its
/// dynamic section (64-bit little-endian ELF: x86_64, aarch64), found in the image's library folders. Reading a
/// program's libraries ahead saves the round trip the loader's open of each would cost, one after the other.
public enum SharedLibraries {
  /// The DT_NEEDED names of the ELF file `read` gives (`read(offset, count)` returns up to `count` bytes there) and its
  /// machine; nil if it is not a dynamically linked 64-bit little-endian ELF file or its headers do not add up.
  public static func needed(_ read: (UInt64, Int) throws -> [UInt8]) throws -> (machine: UInt16, names: [String])? {
    let header = try read(0, 64)
    guard header.count == 64, header[0..<4] == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2, header[5] == 1 else {
      return nil
    }
    let machine = UInt16(header.little(at: 18, size: 2))
    let tableOffset = header.little(at: 32, size: 8)
    let entrySize = Int(header.little(at: 54, size: 2))
    let count = Int(header.little(at: 56, size: 2))
    guard (56...128).contains(entrySize), count <= 512 else { return nil }
    let table = try read(tableOffset, entrySize * count)
    guard table.count == entrySize * count else { return nil }
    var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
    var dynamic: (offset: UInt64, size: UInt64)?
    for index in 0..<count {
      let base = index * entrySize
      let type = table.little(at: base, size: 4)
      let offset = table.little(at: base + 8, size: 8)
      let size = table.little(at: base + 32, size: 8)
      if type == 1 { loads.append((table.little(at: base + 16, size: 8), offset, size)) }
      if type == 2 { dynamic = (offset, size) }
    }
    guard let dynamic, dynamic.size <= 1 << 16 else { return nil }
    let entries = try read(dynamic.offset, Int(dynamic.size))
    var needed: [UInt64] = []
    var strings: UInt64?
    var stringsSize: UInt64 = 0
    for base in stride(from: 0, to: entries.count - 15, by: 16) {
      let tag = entries.little(at: base, size: 8)
      let value = entries.little(at: base + 8, size: 8)
      switch tag {
      case 0: break
      case 1: needed.append(value)
      case 5: strings = value
      case 10: stringsSize = value
      default: continue
      }
      if tag == 0 { break }
    }
    // DT_STRTAB is an address: the file offset is where the loadable segment holding it puts it.
    guard let strings, stringsSize <= 1 << 20,
      let segment = loads.first(where: { strings >= $0.vaddr && strings - $0.vaddr < $0.size })
    else { return needed.isEmpty ? (machine, []) : nil }
    // Header fields are the image's bytes: an offset that overflows is a malformed file, not a trap.
    let (offset, overflow) = (strings - segment.vaddr).addingReportingOverflow(segment.offset)
    guard !overflow else { return nil }
    let names = try read(offset, Int(stringsSize))
    return (
      machine,
      needed.compactMap { start -> String? in
        guard start < names.count else { return nil }
        let name = names[Int(start)...].prefix { $0 != 0 }
        guard !name.isEmpty, name.count < 256 else { return nil }
        return String(decoding: name, as: UTF8.self)
      }
    )
  }

  /// Where the dynamic loader looks for a library of `machine` by default (Debian's multiarch folders first).
  public static func folders(machine: UInt16) -> [String] {
    let multiarch = machine == 183 ? "aarch64-linux-gnu" : "x86_64-linux-gnu"
    return ["/lib/\(multiarch)", "/usr/lib/\(multiarch)", "/lib64", "/usr/lib64", "/lib", "/usr/lib"]
  }

  /// The inodes of the libraries the program or library `inode` names, as found in `reader`'s tree; empty for a file
  /// that is not a dynamically linked ELF file. Reads the file's headers through `reader` (best cached first).
  public static func libraries(of inode: Int32, in reader: ImageReader) -> [Int32] {
    let tree = reader.tree
    let read = { (offset: UInt64, count: Int) throws -> [UInt8] in
      var bytes: [UInt8] = []
      try reader.read(inode: inode, offset: offset, count: UInt64(count)) { bytes += $0 }
      return bytes
    }
    guard let (machine, names) = (try? needed(read)) ?? nil else { return [] }
    return names.compactMap { name in
      let candidates = name.contains("/") ? [name] : folders(machine: machine).map { $0 + "/" + name }
      guard let node = candidates.lazy.compactMap({ tree.resolve(Array($0.utf8)) }).first else { return nil }
      let library = tree.nodes[Int(node)].inode
      return tree.inodes[Int(library)].kind == .regular ? library : nil
    }
  }
}

extension [UInt8] {
  /// The little-endian unsigned integer of `size` bytes at `offset` (0 past the end).
  fileprivate func little(at offset: Int, size: Int) -> UInt64 {
    guard offset >= 0, offset + size <= count else { return 0 }
    var value: UInt64 = 0
    for index in (offset..<offset + size).reversed() { value = value << 8 | UInt64(self[index]) }
    return value
  }
}
