import ClipCore
import Foundation
import Testing

@testable import ClipRuntime

@Suite struct RuntimeStateFilesTests {
  let root = FileManager.default.temporaryDirectory.path + "/clip-runtime-test-\(UUID().uuidString)"

  @Test func mountRootsAreToldWithoutTheMountTable() throws {
    defer { try? FileManager.default.removeItem(atPath: root) }
    try FileManager.default.createDirectory(atPath: root + "/plain", withIntermediateDirectories: true)
    #expect(HostMounts.status("/") == .live)
    #expect(HostMounts.status("/proc") == (HostMounts.mountpoints().contains("/proc") ? .live : .absent))
    #expect(HostMounts.status(root + "/plain") == .absent)
    #expect(HostMounts.status(root + "/missing") == .absent)
    #expect(!HostMounts.isMountpoint(root + "/plain"))
  }

  @Test func referenceRecordsAreReadOnlyForTheirOwnName() throws {
    defer { try? FileManager.default.removeItem(atPath: root) }
    let layout = try RuntimeLayout(root: root)
    let name = "docker://127.0.0.1:5000/debian:bookworm linux/amd64/"
    let path = layout.reference(name)
    #expect(path.hasPrefix(layout.references + "/"))
    #expect(path.count == layout.references.count + 17)  // 16 hex digits
    #expect(layout.reference(name) == path)
    #expect(layout.reference(name + "x") != path)
    try File.writeAtomically(path, Array("0123abcd\n\(name)".utf8))
    #expect(SharedImages.resolvedKey(path, name: name) == "0123abcd")
    #expect(SharedImages.resolvedKey(path, name: "docker://other linux/amd64/") == nil)  // a colliding name
    try File.writeAtomically(path, Array("0123abcd".utf8))  // a record of the older format
    #expect(SharedImages.resolvedKey(path, name: name) == nil)
  }
}
