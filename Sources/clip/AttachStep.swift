import CClipShims
import ClipCore
import ClipRuntime

#if canImport(Glibc)
  import Glibc
#endif

/// The attach step of the hook (specs/hook.md): the image's trees moved into the container's mount namespace, by a
/// forked child of this process — entering a mount namespace (setns) needs a single-threaded process.
enum AttachStep {
  /// Attaches and waits; the child's one-line error becomes the thrown error.
  static func run(_ request: AttachRequest) throws {
    let names = request.entries.map { strdup($0.name) }
    let sources = request.entries.map { strdup($0.source) }
    defer { (names + sources).forEach { free($0) } }
    var error = [CChar](repeating: 0, count: 1024)
    let result = names.map { UnsafePointer($0) }.withUnsafeBufferPointer { namePointers in
      sources.map { UnsafePointer($0) }.withUnsafeBufferPointer { sourcePointers in
        clip_attach_trees_in_child(
          request.pid, request.rootfs, sourcePointers.baseAddress, namePointers.baseAddress, Int32(names.count),
          request.readonly ? 1 : 0, &error, error.count)
      }
    }
    guard result == 0 else {
      throw ClipError(.system, String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }
  }
}
