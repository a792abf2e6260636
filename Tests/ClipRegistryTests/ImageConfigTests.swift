import ClipCore
import ClipOCI
import Foundation
import Testing

@Suite struct ImageConfigTests {
  /// Chain IDs against values computed outside Swift (`printf '%s %s' A B | sha256sum`).
  @Test func chainIDs() throws {
    let a = "sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    let b = "sha256:3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"
    let json = #"{"type": "layers", "diff_ids": ["\#(a)", "\#(b)"]}"#
    let rootfs = try JSONDecoder().decode(ImageConfig.RootFS.self, from: Data(json.utf8))
    #expect(
      rootfs.chainIDs == [
        try Digest(a), try Digest("sha256:51c0c8ace48498d6f5fee6b0592cc06f2da0f3cbe09c5a34a97dce85c3889676"),
      ])
    let empty = try JSONDecoder().decode(
      ImageConfig.RootFS.self, from: Data(#"{"type": "layers", "diff_ids": []}"#.utf8))
    #expect(empty.chainIDs.isEmpty)
  }
}
