import Foundation
import Synchronization

#if canImport(Glibc)
  import Glibc
#endif

/// Facts about this machine.
public enum System {
  /// Online CPU cores.
  public static var coreCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

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

/// A byte count shared between threads.
public final class ByteCounter: Sendable {
  private let value = Atomic<UInt64>(0)

  /// A count of zero.
  public init() {}

  /// Adds `count` and returns the new total.
  @discardableResult
  public func add(_ count: UInt64) -> UInt64 { value.add(count, ordering: .relaxed).newValue }

  /// The count so far.
  public var total: UInt64 { value.load(ordering: .relaxed) }
}

/// A thread of its own that runs jobs one at a time, in the order they were queued.
///
/// ## Concurrency model
/// Any thread may `submit`; the owner calls `start` once and `close` before letting go of it (`close` waits until the
/// queued jobs are done and the thread has ended). The queue is shared under `condition`; the job closure runs on the
/// job thread only.
public final class JobThread<Job>: @unchecked Sendable {
  private let name: String
  private let limit: Int
  private let condition = NSCondition()
  private var queue: [Job] = []
  private var closed = false
  private var finished = false

  /// A job thread called `name` (not started yet) whose `submit` waits while `limit` jobs are queued.
  public init(name: String, limit: Int) {
    self.name = name
    self.limit = max(limit, 1)
  }

  /// Starts the thread, which runs `run` on each job.
  public func start(_ run: @escaping @Sendable (Job) -> Void) {
    let thread = Thread { [unowned self] in self.work(run) }
    thread.name = name
    thread.start()
  }

  /// Queues a job, waiting while `limit` are queued.
  public func submit(_ job: Job) {
    condition.lock()
    while queue.count >= limit { condition.wait() }
    queue.append(job)
    condition.broadcast()
    condition.unlock()
  }

  /// Waits until every queued job is done and the thread has ended (at once if it already has).
  public func close() {
    condition.lock()
    closed = true
    condition.broadcast()
    while !finished { condition.wait() }
    condition.unlock()
  }

  private func work(_ run: (Job) -> Void) {
    while true {
      condition.lock()
      while queue.isEmpty && !closed { condition.wait() }
      if queue.isEmpty {
        finished = true
        condition.broadcast()
        condition.unlock()
        return
      }
      let job = queue.removeFirst()
      condition.broadcast()
      condition.unlock()
      run(job)
    }
  }
}

/// Work started on another thread whose result is waited for later.
public final class Background<Value: Sendable>: Sendable {
  private let result = Mutex<Value?>(nil)
  private let group = DispatchGroup()

  /// Creates a background slot with nothing started.
  public init() {}

  /// Runs `work` on a global queue.
  public func start(_ work: @escaping @Sendable () -> Value) {
    group.enter()
    DispatchQueue.global().async { [self] in
      let value = work()
      result.withLock { $0 = value }
      group.leave()
    }
  }

  /// The result of the work started, once it is done; nil if none was started.
  public func wait() -> Value? {
    group.wait()
    return result.withLock { $0 }
  }
}
