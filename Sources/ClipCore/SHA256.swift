import CCrypto
import Foundation

/// Incremental SHA-256 (OpenSSL's EVP interface, which uses the CPU's SHA extensions where present).
public final class SHA256 {
  private let context: OpaquePointer

  /// Starts a new digest.
  public init() {
    guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
    self.context = context
    EVP_DigestInit_ex(context, EVP_sha256(), nil)
  }

  deinit { EVP_MD_CTX_free(context) }

  /// Adds bytes to the digest.
  public func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    EVP_DigestUpdate(context, base, bytes.count)
  }

  /// Adds bytes to the digest.
  public func update(_ bytes: some ContiguousBytes) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// Finishes the digest and returns its 32 bytes; the hasher then starts over.
  public func finish() -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    out.withUnsafeMutableBufferPointer { _ = EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
    EVP_DigestInit_ex(context, EVP_sha256(), nil)
    return out
  }

  /// The SHA-256 of `bytes`.
  public static func hash(_ bytes: some ContiguousBytes) -> [UInt8] {
    let hasher = SHA256()
    hasher.update(bytes)
    return hasher.finish()
  }
}
