import CClipShims
import CSeccomp

#if canImport(Glibc)
  import Glibc
#endif

/// Confines a process that parses untrusted bytes (layer blobs and ranges from a registry): a seccomp filter, on
/// every thread, makes the system calls such a process never needs fail with EPERM, so that a parser bug cannot
/// become running a program, changing the mount table or the kernel, or reaching into another process.
public enum Confinement {
  /// What a mounted clip daemon may no longer do. It keeps file, socket, thread and `umount2` calls (it unmounts its
  /// image when released).
  public static let deniedSystemCalls = [
    // running programs and reaching into other processes
    "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    // the mount table and namespaces (the daemon is mounted already)
    "mount", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "pivot_root",
    "chroot", "setns", "unshare",
    // the kernel and the machine
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
    "userfaultfd", "keyctl", "add_key", "request_key", "reboot", "swapon", "swapoff", "acct", "quotactl",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "personality",
    "open_by_handle_at", "name_to_handle_at",
    // identities and privileges
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "capset",
  ]

  /// Installs the filter on all threads of this process (and sets no_new_privs). Irreversible.
  public static func apply(denying names: [String] = deniedSystemCalls) throws {
    let allow: UInt32 = 0x7fff_0000  // SCMP_ACT_ALLOW
    let deny: UInt32 = 0x0005_0000 | UInt32(EPERM)  // SCMP_ACT_ERRNO(EPERM)
    if let error = clip_seccomp_load() { throw ClipError(.system, String(cString: error)) }
    guard let filter = seccomp_init(allow) else { throw ClipError(.system, "seccomp_init failed") }
    defer { seccomp_release(filter) }
    var result = seccomp_attr_set(filter, SCMP_FLTATR_CTL_TSYNC, 1)
    guard result == 0 else { throw ClipError.system("seccomp_attr_set TSYNC", errno: -result) }
    for name in names {
      let number = seccomp_syscall_resolve_name(name)
      guard number >= 0 else { continue }  // not a system call on this architecture
      result = seccomp_rule_add_array(filter, deny, number, 0, nil)
      guard result == 0 else { throw ClipError.system("seccomp rule for \(name)", errno: -result) }
    }
    result = seccomp_load(filter)
    guard result == 0 else { throw ClipError.system("seccomp_load", errno: -result) }
  }
}
