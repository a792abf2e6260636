import ClipCore
import Testing

@Suite struct TrimmingTests {
  @Test func trimsASCIIWhitespaceAtBothEndsOnly() {
    #expect(" \t docker://host/repo:tag \r\n".trimmingASCIIWhitespace == "docker://host/repo:tag")
    #expect("a b\tc".trimmingASCIIWhitespace == "a b\tc")
    #expect("runc\n".trimmingASCIIWhitespace == "runc")
    #expect("\u{0B}\u{0C}12345\n"[...].trimmingASCIIWhitespace == "12345")
  }

  @Test func leavesNothingOfBlankText() {
    #expect("".trimmingASCIIWhitespace == "")
    #expect(" \n\t ".trimmingASCIIWhitespace == "")
  }

  @Test func keepsNonASCIIText() {
    #expect(" é\u{00A0}".trimmingASCIIWhitespace == "é\u{00A0}")
  }
}
