import Foundation
import Synchronization

/// Runs `body(0)` … `body(count - 1)` each on a thread of its own and waits for all of them.
///
/// For work that blocks, such as network requests: `DispatchQueue.concurrentPerform` runs no more iterations at once
/// than there are cores, so on a 2-core machine eight "concurrent" fetches would be two.
public func runOnThreads(_ count: Int, name: String, _ body: @escaping @Sendable (Int) -> Void) {
  let group = DispatchGroup()
  for i in 0..<count {
    group.enter()
    let thread = Thread {
      body(i)
      group.leave()
    }
    thread.name = name
    thread.start()
  }
  group.wait()
}

/// Items handed out one at a time to the threads that work through them, in order.
public final class WorkList<Item: Sendable>: Sendable {
  private let items: Mutex<[Item]>

  /// A list of `items`, handed out first to last.
  public init(_ items: [Item]) { self.items = Mutex(items.reversed()) }

  /// The next item; nil when all are handed out.
  public func next() -> Item? { items.withLock { $0.popLast() } }
}
