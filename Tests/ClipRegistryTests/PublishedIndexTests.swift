import ClipCore
import ClipOCI
import Testing

@testable import ClipRegistry

struct PublishedIndexTests {
  let index = Descriptor(mediaType: PublishedIndex.layerMediaType, digest: Digest.of([1]), size: 100)
  let profile = Descriptor(mediaType: PublishedIndex.profileMediaType, digest: Digest.of([2]), size: 7)

  @Test func blobsRoundTripThroughTheirFields() throws {
    for blobs in [PublishedIndex.Blobs(index: index), PublishedIndex.Blobs(index: index, profile: profile)] {
      let fields = blobs.fields(.annotations)
      #expect(fields.count == (blobs.profile == nil ? 2 : 4))
      #expect(try PublishedIndex.Blobs(fields, keys: .annotations) == blobs)
    }
    #expect(try PublishedIndex.Blobs(["other": "x"], keys: .annotations) == nil)
  }

  @Test func malformedFieldsAreNamed() throws {
    var fields = PublishedIndex.Blobs(index: index, profile: profile).fields(.annotations)
    fields[PublishedIndex.profileSizeAnnotation] = "-1"
    let size = #expect(throws: ClipError.self) { try PublishedIndex.Blobs(fields, keys: .annotations) }
    #expect(size?.description.contains(PublishedIndex.profileSizeAnnotation) == true)
    fields = PublishedIndex.Blobs(index: index).fields(.annotations)
    fields[PublishedIndex.blobAnnotation] = "md5:00"
    let digest = #expect(throws: ClipError.self) { try PublishedIndex.Blobs(fields, keys: .annotations) }
    #expect(digest?.description.contains(PublishedIndex.blobAnnotation) == true)
  }
}
