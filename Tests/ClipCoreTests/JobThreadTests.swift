import ClipCore
import Synchronization
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite struct JobThreadTests {
  final class Seen: Sendable {
    let jobs = Mutex<[Int]>([])
  }

  @Test func runsJobsInOrderAndCloseWaitsForAllOfThem() {
    let seen = Seen()
    let jobs = JobThread<Int>(name: "clip-test", limit: 2)
    jobs.start { job in
      usleep(500)  // slower than the submitter: submit has to wait at the limit
      seen.jobs.withLock { $0.append(job) }
    }
    for job in 0..<50 { jobs.submit(job) }
    jobs.close()
    #expect(seen.jobs.withLock { $0 } == Array(0..<50))
    jobs.close()  // a second close returns at once
  }
}
