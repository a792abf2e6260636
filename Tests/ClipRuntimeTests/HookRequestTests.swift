import ClipCore
import ClipOCI
import Foundation
import Testing

@testable import ClipRuntime

@Suite struct HookRequestTests {
  @Test func withoutTheImageAnnotationTheContainerIsNotClips() throws {
    #expect(try ImageRequest(annotations: ["org.other": "x"]) == nil)
  }

  @Test func readsEveryAnnotation() throws {
    let digest = Digest.of(Array("index".utf8))
    let request = try #require(
      try ImageRequest(annotations: [
        Annotation.image: " docker://127.0.0.1:5000/debian:bookworm ",
        Annotation.index: "/var/lib/clip/debian.clip",
        Annotation.indexDigest: digest.description,
        Annotation.platform: "linux/arm64/v8",
        Annotation.prefetch: "/etc/clip/debian.profile",
        Annotation.authFile: "/root/.docker/config.json",
        Annotation.plainHTTP: "true",
        Annotation.keepWarm: "120",
        Annotation.pull: "always",
      ]))
    #expect(request.reference == "docker://127.0.0.1:5000/debian:bookworm")
    #expect(request.indexPath == "/var/lib/clip/debian.clip")
    #expect(request.indexDigest == digest)
    #expect(request.platform == Platform(os: "linux", architecture: "arm64", variant: "v8"))
    #expect(request.prefetch == "/etc/clip/debian.profile")
    #expect(request.authFile == "/root/.docker/config.json")
    #expect(request.plainHTTP)
    #expect(request.keepWarm == 120)
    #expect(request.pullAlways)
  }

  @Test func defaults() throws {
    let request = try #require(try ImageRequest(annotations: [Annotation.image: "busybox"]))
    #expect(request.prefetch == "auto")
    #expect(!request.plainHTTP)
    #expect(request.keepWarm == nil && request.indexPath == nil && request.platform == nil && !request.pullAlways)
  }

  @Test func aReferencePinnedByDigestNamesTheManifest() throws {
    let digest = Digest.of(Array("manifest".utf8))
    let pinned = try #require(
      try ImageRequest(annotations: [Annotation.image: "docker://127.0.0.1:5000/debian:bookworm@\(digest)"]))
    #expect(pinned.manifestDigest == digest)
    let tagged = try #require(
      try ImageRequest(annotations: [Annotation.image: "docker://127.0.0.1:5000/debian:bookworm"]))
    #expect(tagged.manifestDigest == nil)
    let layout = try #require(try ImageRequest(annotations: [Annotation.image: "oci:/images/debian:latest"]))
    #expect(layout.manifestDigest == nil)
  }

  @Test(arguments: [
    (Annotation.image, "  ", "is empty"),
    (Annotation.index, "relative.clip", "not an absolute path"),
    (Annotation.indexDigest, "md5:1234", Annotation.indexDigest),
    (Annotation.platform, "", Annotation.platform),
    (Annotation.prefetch, "some", "not an absolute path"),
    (Annotation.authFile, "auth.json", "not an absolute path"),
    (Annotation.plainHTTP, "yes", "neither true nor false"),
    (Annotation.keepWarm, "-1", "not a number of seconds"),
    (Annotation.pull, "sometimes", "neither missing nor always"),
  ])
  func malformedAnnotationsAreNamed(annotation: String, value: String, expected: String) throws {
    var annotations = [Annotation.image: "busybox"]
    annotations[annotation] = value
    let error = #expect(throws: ClipError.self) { try ImageRequest(annotations: annotations) }
    #expect(error?.code == .invalidArgument)
    #expect(error.map { "\($0)".contains(expected) } == true, "\(String(describing: error))")
  }

  @Test func containerIDsMustNameAFolder() throws {
    try RuntimeLayout.validate(containerID: "web-1_a.b+c")
    for id in ["", ".", "..", "a/b", "a b", String(repeating: "x", count: 201)] {
      #expect(throws: ClipError.self) { try RuntimeLayout.validate(containerID: id) }
    }
  }

  @Test func decodesTheRuntimeStateAndConfig() throws {
    let state = try decodeJSON(
      RuntimeState.self,
      from: Array(
        #"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/b","annotations":{"a":"b"}}"#.utf8),
      what: "state")
    #expect(state == RuntimeState(id: "c1", status: "creating", pid: 4242, bundle: "/b", annotations: ["a": "b"]))
    let config = try decodeJSON(
      RuntimeConfig.self,
      from: Array(#"{"root":{"path":"rootfs","readonly":true},"process":{"user":{"uid":1,"gid":2}},"x":1}"#.utf8),
      what: "config")
    #expect(try config.rootPath(bundle: "/b") == "/b/rootfs")
    #expect(config.root?.readonly == true)
    #expect(config.process?.user?.uid == 1 && config.process?.user?.gid == 2)
    let absolute = try decodeJSON(RuntimeConfig.self, from: Array(#"{"root":{"path":"/r"}}"#.utf8), what: "config")
    #expect(try absolute.rootPath(bundle: "/b") == "/r")
    let rootless = try decodeJSON(RuntimeConfig.self, from: Array("{}".utf8), what: "config")
    #expect(throws: ClipError.self) { try rootless.rootPath(bundle: "/b") }
  }
}

@Suite struct RuntimeDocumentsTests {
  @Test func readsTheStateAndConfigWithoutCodable() throws {
    let state = try RuntimeState(
      json: Array(
        #"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":4242,"bundle":"/b","annotations":{"org.clip.image":"busybox"}}"#
          .utf8), what: "state")
    #expect(
      state
        == RuntimeState(
          id: "c1", status: "creating", pid: 4242, bundle: "/b", annotations: ["org.clip.image": "busybox"]))
    let stopped = try RuntimeState(
      json: Array(#"{"ociVersion":"1.0.2","id":"c1","status":"stopped","bundle":"/b"}"#.utf8), what: "state")
    #expect(stopped.pid == nil && stopped.annotations == nil)
    let config = try RuntimeConfig(
      json: Array(
        #"{"ociVersion":"1.0.2","process":{"terminal":false,"user":{"uid":1000,"gid":100},"args":["sh","-c","true"],"#
          .utf8)
        + Array(
          #""env":["A=b"]},"root":{"path":"rootfs","readonly":true},"linux":{"namespaces":[{"type":"pid"}]}}"#.utf8),
      what: "config.json")
    #expect(config.root?.path == "rootfs" && config.root?.readonly == true)
    #expect(config.process?.user?.uid == 1000 && config.process?.user?.gid == 100)
    #expect(config.process?.args == ["sh", "-c", "true"])
    #expect(config.annotations == nil)
  }

  @Test func errorsNameTheDocumentAndTheField() {
    #expect {
      try RuntimeState(json: Array(#"{"ociVersion":"1.0.2","id":7,"status":"x","bundle":"/b"}"#.utf8), what: "state")
    } throws: { error in
      "\(error)" == "malformed state: id: not a string"
    }
    #expect {
      try RuntimeConfig(json: Array(#"{"process":{"user":{"uid":-1,"gid":0}}}"#.utf8), what: "config.json")
    } throws: { error in
      "\(error)" == "malformed config.json: process.user.uid: not a user ID"
    }
    #expect(throws: ClipError.self) { try RuntimeState(json: Array("not json".utf8), what: "state") }
  }
}
