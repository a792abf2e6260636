import ClipCore
import Foundation
import Testing

@testable import ClipSnapshotter

@Suite struct SnapshotterTests {
  func scratch() throws -> String {
    let path = NSTemporaryDirectory() + "clip-snapshotter-test-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
  }

  func code(_ body: () throws -> Void) -> SnapshotError.Code? {
    do {
      try body()
      return nil
    } catch let error as SnapshotError {
      return error.code
    } catch {
      return .internal
    }
  }

  @Test func lifecycleAndMounts() throws {
    let root = try scratch()
    defer { try? FileTree.remove(root) }
    let snapshotter = try Snapshotter(root: root)
    let base = try snapshotter.prepare(key: "base-active", parent: "", labels: [:])
    #expect(base.count == 1 && base[0].type == "bind" && base[0].options == ["rw", "rbind"])
    try Data("hello".utf8).write(to: URL(fileURLWithPath: base[0].source + "/file"))
    try snapshotter.commit(name: "base", key: "base-active", labels: ["l": "1"])
    #expect(try snapshotter.stat(key: "base").kind == .committed)
    #expect(try snapshotter.usage(key: "base").size == 5)
    #expect(code { _ = try snapshotter.stat(key: "base-active") } == .notFound)

    let child = try snapshotter.prepare(key: "child", parent: "base", labels: [:])
    #expect(child[0].type == "overlay")
    #expect(child[0].options.last == "lowerdir=\(root)/snapshots/1/fs")
    let view = try snapshotter.view(key: "view", parent: "base", labels: [:])
    #expect(view == [SnapshotMount(type: "bind", source: "\(root)/snapshots/1/fs", options: ["ro", "rbind"])])
    #expect(try snapshotter.mounts(key: "child") == child)

    #expect(code { _ = try snapshotter.prepare(key: "child", parent: "", labels: [:]) } == .alreadyExists)
    #expect(code { _ = try snapshotter.prepare(key: "x", parent: "missing", labels: [:]) } == .notFound)
    #expect(code { _ = try snapshotter.prepare(key: "x", parent: "child", labels: [:]) } == .invalidArgument)
    #expect(code { _ = try snapshotter.mounts(key: "base") } == .failedPrecondition)
    #expect(code { try snapshotter.commit(name: "base", key: "child", labels: [:]) } == .alreadyExists)
    #expect(code { try snapshotter.commit(name: "v2", key: "view", labels: [:]) } == .failedPrecondition)
    #expect(code { try snapshotter.remove(key: "base") } == .failedPrecondition)
    #expect(code { try snapshotter.remove(key: "nothing") } == .notFound)
    #expect(code { _ = try snapshotter.prepare(key: "", parent: "", labels: [:]) } == .invalidArgument)

    try snapshotter.remove(key: "view")
    try snapshotter.remove(key: "child")
    try snapshotter.remove(key: "base")
    #expect(try snapshotter.list(filters: []).isEmpty)
    #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/snapshots").isEmpty)
  }

  @Test func labelsUpdateByField() throws {
    let root = try scratch()
    defer { try? FileTree.remove(root) }
    let snapshotter = try Snapshotter(root: root)
    _ = try snapshotter.prepare(key: "a", parent: "", labels: ["keep": "1", "drop": "2"])
    var wanted = try snapshotter.stat(key: "a")
    wanted.labels = ["new": "3"]
    let updated = try snapshotter.update(wanted, fieldPaths: ["labels.new", "labels.drop"])
    #expect(updated.labels == ["keep": "1", "new": "3"])
    #expect(updated.updated > updated.created)
    #expect(try snapshotter.update(wanted, fieldPaths: []).labels == ["new": "3"])
    #expect(code { _ = try snapshotter.update(wanted, fieldPaths: ["parent"]) } == .invalidArgument)
  }

  @Test func aRestartFindsEverySnapshotAndCleanupRemovesOrphans() throws {
    let root = try scratch()
    defer { try? FileTree.remove(root) }
    do {
      let snapshotter = try Snapshotter(root: root)
      _ = try snapshotter.prepare(key: "a", parent: "", labels: ["x": "y"])
      try snapshotter.commit(name: "b", key: "a", labels: [:])
      _ = try snapshotter.view(key: "v", parent: "b", labels: [:])
    }
    try FileManager.default.createDirectory(atPath: root + "/snapshots/99/fs", withIntermediateDirectories: true)
    let again = try Snapshotter(root: root)
    #expect(try again.list(filters: []).map(\.name) == ["b", "v"])
    try again.cleanup()
    #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/snapshots").sorted() == ["1", "2"])
  }

  @Test func filtersFollowContainerdsSyntax() throws {
    let now = Date()
    let infos = [
      SnapshotInfo(name: "p", parent: "", kind: .committed, created: now, updated: now, labels: ["gc": "w"]),
      SnapshotInfo(name: "a", parent: "p", kind: .active, created: now, updated: now, labels: ["gc": "w", "l": "2"]),
      SnapshotInfo(name: "v", parent: "p", kind: .view, created: now, updated: now, labels: ["a.b": "1.5"]),
    ]
    func names(_ filters: [String]) throws -> [String] {
      let parsed = try filters.map { try SnapshotFilter(parsing: $0) }
      return infos.filter { info in parsed.contains { $0.matches(info) } }.map(\.name)
    }
    #expect(try names(["kind==active,labels.gc==w"]) == ["a"])
    #expect(try names(["name==p", "name==v"]) == ["p", "v"])
    #expect(try names(["parent!=\"\""]) == ["a", "v"])
    #expect(try names(["labels.l"]) == ["a"])
    #expect(try names(["labels.\"a.b\"==1.5"]) == ["v"])
    #expect(try names(["name~=^[av]$"]) == ["a", "v"])
    #expect(throws: SnapshotError.self) { try SnapshotFilter(parsing: "labels.\"open") }
    #expect(throws: SnapshotError.self) { try SnapshotFilter(parsing: "==x") }
  }
}
