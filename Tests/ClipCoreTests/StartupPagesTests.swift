import CClipShims
import Glibc
import Testing

@Suite struct StartupPagesTests {
  func load(_ offset: UInt64, _ size: UInt64, executable: Bool) -> Elf64_Phdr {
    var header = Elf64_Phdr()
    header.p_type = UInt32(PT_LOAD)
    header.p_flags = UInt32(PF_R) | (executable ? UInt32(PF_X) : 0)
    header.p_offset = offset
    header.p_filesz = size
    return header
  }

  /// Release clip's layout: headers and metadata, a small code segment (.init, the PLT), the relocated data, then
  /// the code; the part kept ends where the large code segment starts, in whole pages.
  @Test func endsWhereTheLargestCodeSegmentStarts() {
    var phdr = Elf64_Phdr()
    phdr.p_type = UInt32(PT_PHDR)
    let headers = [
      phdr, load(0, 0x11_da92, executable: false), load(0x11_da94, 0x23dc, executable: true),
      load(0x11_fe70, 0x13_4990, executable: false), load(0x25_4800, 0x4f_c894, executable: false),
      load(0x75_10c0, 0x1bc_9adf, executable: true), load(0x231_a9f0, 0x26c_3610, executable: false),
    ]
    #expect(clip_startup_length(headers, headers.count, 4096) == 0x75_1000)
    // Code first (a default layout with headers in the code segment): nothing before it.
    let codeFirst = [load(0, 0x50_0000, executable: true), load(0x50_1000, 0x1000, executable: false)]
    #expect(clip_startup_length(codeFirst, codeFirst.count, 4096) == 0)
    #expect(clip_startup_length([], 0, 4096) == 0)
  }
}
