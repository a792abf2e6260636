import ClipCore
import ClipIndex
import Dispatch
import Synchronization

/// Fetches, in the background, the spans holding the files of a directory once a second file of it is opened:
/// programs that read several files of one directory tend to read many (an interpreter's modules, a package's data
/// files), and without a profile each such read would otherwise cost a round trip after the other. A directory one
/// file is read from (a library among hundreds, a command) is left alone, unless it is small: a directory whose files
/// hold at most `budget / 8` bytes (a package's few modules, a locale) is read ahead at its first open, since its
/// second would otherwise wait a round trip for little. So is one named like a directory read ahead before: a program
/// that read one such directory tends to read the others (python's `__pycache__` of each package). Only directories
/// whose files hold at most `budget` bytes, each directory once per mount, whole spans, several requests at once.
///
/// ## Concurrency model
/// Safe to share between threads: what was opened where is behind a mutex; a FUSE open only looks that up, and the
/// directory's files are summed up and fetched on background threads (`SpanStore.prefetchInBackground`).
public final class DirectoryReadahead: Sendable {
  /// The tree whose directories are read ahead.
  public let tree: MergedTree
  /// Where the spans go.
  public let store: SpanStore
  /// The most file bytes a directory may hold to be read ahead.
  public let budget: UInt64
  /// Per directory seen: the first file opened in it, or `readAhead` once it was read ahead.
  private let opened = Mutex<[Int32: Int32]>([:])
  private static let readAhead: Int32 = -1
  /// The names of the directories read ahead so far.
  private let names = Mutex<Set<ArraySlice<UInt8>>>([])

  /// Requests in flight per directory read ahead.
  static let concurrency = 8

  /// Creates a read-ahead of `tree`'s directories into `store`, for directories whose files hold at most `budget`
  /// bytes.
  public init(tree: MergedTree, store: SpanStore, budget: UInt64) {
    self.tree = tree
    self.store = store
    self.budget = budget
  }

  /// Notes that the file of inode `inode` was opened: its directory is read ahead if its files hold at most
  /// `budget / 8` bytes, or if this is the second file opened in it or a directory of its name was read ahead and they
  /// hold at most `budget` bytes.
  public func opened(inode: Int32) {
    let node = tree.primaryNode[Int(inode)]
    guard node >= 0 else { return }
    let directory = tree.nodes[Int(node)].parent
    guard directory >= 0 else { return }
    let seen = opened.withLock { opened -> Int32? in
      let first = opened[directory]
      if first == nil || (first != Self.readAhead && first != inode) {
        opened[directory] = first == nil ? inode : Self.readAhead
      }
      return first
    }
    guard seen != Self.readAhead, seen != inode else { return }
    let name = tree.nodes[Int(directory)].name
    let limit = seen != nil || names.withLock { $0.contains(name) } ? budget : budget / 8
    DispatchQueue.global(qos: .utility).async { [self] in
      guard let spans = spans(of: directory, within: limit) else { return }
      opened.withLock { $0[directory] = Self.readAhead }
      names.withLock { _ = $0.insert(name) }
      store.prefetchInBackground(spans, concurrency: Self.concurrency)
    }
  }

  /// The spans holding the data of `directory`'s regular files (not those of its subdirectories), or nil if the
  /// files hold more than `limit` bytes (by default `budget`).
  func spans(of directory: Int32, within limit: UInt64? = nil) -> [SpanStore.Position]? {
    let limit = limit ?? budget
    var total: UInt64 = 0
    var spans: [SpanStore.Position] = []
    for child in tree.children(of: directory) {
      let number = tree.nodes[Int(child)].inode
      let inode = tree.inodes[Int(number)]
      guard inode.kind == .regular, inode.size > 0, let entry = tree.entry(of: number) else { continue }
      total += entry.size
      guard total <= limit else { return nil }
      for position in store.positions(ofFile: number, in: tree, partialEnd: false) where spans.last != position {
        spans.append(position)
      }
    }
    return spans
  }
}
