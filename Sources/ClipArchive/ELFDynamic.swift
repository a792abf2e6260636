import ClipCore

/// The shared libraries an ELF program or library names: the DT_NEEDED entries of its dynamic section (64-bit
/// little-endian ELF: x86_64, aarch64). Every header field is the image's bytes and is checked before use.
public enum ELFDynamic {
  /// The DT_NEEDED names of the ELF file `read` gives (`read(offset, count)` returns up to `count` bytes there) and its
  /// machine; nil if it is not a dynamically linked 64-bit little-endian ELF file or its headers do not add up.
  public static func needed(_ read: (UInt64, Int) throws -> [UInt8]) throws -> (machine: UInt16, names: [String])? {
    guard let (machine, loads, dynamic) = try segments(read) else { return nil }
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

  /// The machine, loadable segments and dynamic segment the program headers of the ELF file `read` gives name; nil
  /// if it is not a 64-bit little-endian ELF file or its program headers do not add up.
  static func segments(_ read: (UInt64, Int) throws -> [UInt8]) throws -> (
    machine: UInt16, loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)], dynamic: (offset: UInt64, size: UInt64)?
  )? {
    let header = try read(0, 64)
    guard header.count == 64, header[0..<4] == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2, header[5] == 1 else {
      return nil
    }
    let machine = UInt16(header.little(at: 18, size: 2))
    guard let place = programHeaderTable(header) else { return nil }
    let table = try read(place.offset, place.count)
    guard table.count == place.count else { return nil }
    let entrySize = place.entrySize
    var loads: [(vaddr: UInt64, offset: UInt64, size: UInt64)] = []
    var dynamic: (offset: UInt64, size: UInt64)?
    for base in stride(from: 0, to: table.count, by: entrySize) {
      let type = table.little(at: base, size: 4)
      let offset = table.little(at: base + 8, size: 8)
      let size = table.little(at: base + 32, size: 8)
      if type == 1 { loads.append((table.little(at: base + 16, size: 8), offset, size)) }
      if type == 2 { dynamic = (offset, size) }
    }
    return (machine, loads, dynamic)
  }

  /// Where the program header table of an ELF file with the 64-byte header `header` is, and its entry size; nil if
  /// its entries are not 56 to 128 bytes or there are more than 512.
  static func programHeaderTable(_ header: [UInt8]) -> (offset: UInt64, count: Int, entrySize: Int)? {
    let entrySize = Int(header.little(at: 54, size: 2))
    let count = Int(header.little(at: 56, size: 2))
    guard (56...128).contains(entrySize), count <= 512 else { return nil }
    return (header.little(at: 32, size: 8), entrySize * count, entrySize)
  }

  /// Whether `bytes` (a file's first 18 or more) start a 64-bit little-endian executable or shared object.
  static func startsProgram(_ bytes: [UInt8]) -> Bool {
    bytes.count >= 18 && bytes[0..<4] == [0x7f, 0x45, 0x4c, 0x46] && bytes[4] == 2 && bytes[5] == 1
      && (bytes[16] == 2 || bytes[16] == 3) && bytes[17] == 0
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
