import CClipShims
import Foundation

/// Incremental SHA-256 (OpenSSL's EVP interface, which uses the CPU's SHA extensions where present; libcrypto is
/// loaded on first use, so that commands that never hash start without it).
public final class SHA256 {
  private let context: OpaquePointer

  /// Starts a new digest. libcrypto is part of every installation (libssl3): without it clip stops here with one
  /// line on stderr and exit status 1, as it does for the other libraries it loads on first use (clip_lazy.h).
  public init() {
    guard let context = clip_sha256_new() else {
      if let reason = clip_crypto_error() { clip_exit_error(reason) }
      clip_exit_error("SHA-256: out of memory")
    }
    self.context = context
  }

  deinit { clip_sha256_free(context) }

  /// Adds bytes to the digest.
  public func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    clip_sha256_update(context, base, bytes.count)
  }

  /// Adds bytes to the digest.
  public func update(_ bytes: some ContiguousBytes) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// Finishes the digest and returns its 32 bytes; the hasher then starts over.
  public func finish() -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 32)
    out.withUnsafeMutableBufferPointer { clip_sha256_finish(context, $0.baseAddress) }
    return out
  }

  /// The SHA-256 of `bytes`.
  public static func hash(_ bytes: some ContiguousBytes) -> [UInt8] {
    let hasher = SHA256()
    hasher.update(bytes)
    return hasher.finish()
  }
}
