import ClipCore
import ClipRegistry
import ClipTestSupport
import Foundation
import Testing

@testable import ClipStore

@Suite struct WarmingTests {
  let directory = FileManager.default.temporaryDirectory.path + "/clip-warming-test-\(UUID().uuidString)"

  /// An image with Debian's python3 (compiled modules, but utf_8 only as source, and sitecustomize), a python under
  /// /usr/local with sources only, and programs whose names only look like python's.
  func reader() throws -> ImageReader {
    var tar = TarBuilder()
    let code = Array("pass\n".utf8)
    tar.add("usr/bin/python3", type: "2", link: "python3.11")
    tar.add("usr/bin/python3.11", mode: 0o755, data: code)
    for module in ["__init__", "aliases"] {
      tar.add("usr/lib/python3.11/encodings/\(module).py", data: code)
      tar.add("usr/lib/python3.11/encodings/__pycache__/\(module).cpython-311.pyc", data: code)
    }
    tar.add("usr/lib/python3.11/encodings/utf_8.py", data: code)
    tar.add("usr/lib/python3.11/__pycache__/sitecustomize.cpython-311.pyc", data: code)
    tar.add("usr/lib/python3.11/__pycache__/os.cpython-311.pyc", data: code)
    tar.add("usr/local/bin/python3.12", mode: 0o755, data: code)
    tar.add("usr/local/lib/python3.12/encodings/__init__.py", data: code)
    tar.add("usr/bin/python3.x", mode: 0o755, data: code)
    tar.add("usr/lib/python3.x/encodings/__init__.py", data: code)
    tar.add("opt/python3.11", mode: 0o755, data: code)
    let bytes = tar.finish()
    try OCILayoutWriter(directory: directory).image(gzipLayer: bytes)
    let source = try openImageSource("oci:\(directory):latest")
    return try ImageReader(index: try ImageIndexer().index(source), source: source, disk: nil)
  }

  func paths(_ names: [String], in reader: ImageReader) -> [String] {
    Warming.files(named: names, in: reader).map {
      "/" + String(decoding: reader.tree.path(of: reader.tree.primaryNode[Int($0)]), as: UTF8.self)
    }
  }

  @Test func aPythonStartWarmsItsEncodingsAndSitecustomize() throws {
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let reader = try reader()
    #expect(
      paths(["/usr/bin/python3"], in: reader) == [
        "/usr/bin/python3.11", "/usr/lib/python3.11/encodings/__pycache__/__init__.cpython-311.pyc",
        "/usr/lib/python3.11/encodings/__pycache__/aliases.cpython-311.pyc", "/usr/lib/python3.11/encodings/utf_8.py",
        "/usr/lib/python3.11/__pycache__/sitecustomize.cpython-311.pyc",
      ])
    #expect(
      paths(["/usr/local/bin/python3.12"], in: reader) == [
        "/usr/local/bin/python3.12", "/usr/local/lib/python3.12/encodings/__init__.py",
      ])
    #expect(paths(["/usr/bin/python3.x", "/opt/python3.11"], in: reader) == ["/usr/bin/python3.x", "/opt/python3.11"])
  }
}
