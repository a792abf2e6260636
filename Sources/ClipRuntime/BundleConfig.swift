import ClipCore
import ClipOCI
import Foundation

/// Writes the config.json of a runnable OCI bundle for an image: `runc spec`'s defaults, the image's command,
/// environment, working directory and user, the clip hooks and the annotations naming the image.
public struct BundleConfig: Sendable {
  /// The image's run defaults.
  public var run: ImageConfig.RunConfig
  /// The command to run instead of the image's entrypoint and cmd.
  public var command: [String]?
  /// The annotations (at least `org.clip.image`).
  public var annotations: [String: String]
  /// The clip executable and the arguments the hook entries pass it (after `clip hook STAGE`).
  public var hookExecutable: String
  public var hookArguments: [String]
  /// Whether the container's root filesystem is read-only.
  public var readonly = false
  /// The image's /etc/passwd and /etc/group, to turn a user or group name into numbers.
  public var passwd: [UInt8]?
  public var group: [UInt8]?

  /// Creates a configuration.
  public init(
    run: ImageConfig.RunConfig, command: [String]?, annotations: [String: String], hookExecutable: String,
    hookArguments: [String]
  ) {
    self.run = run
    self.command = command
    self.annotations = annotations
    self.hookExecutable = hookExecutable
    self.hookArguments = hookArguments
  }

  /// The default PATH when the image sets none (the one Docker and containerd use).
  public static let defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

  /// The process arguments.
  public func arguments() throws -> [String] {
    let arguments = command ?? ((run.entrypoint ?? []) + (run.cmd ?? []))
    guard !arguments.isEmpty else {
      throw ClipError(.invalidArgument, "the image names no command (no Entrypoint or Cmd): give one after --")
    }
    return arguments
  }

  /// The numeric user and group for the image's `User` (`name`, `uid`, `name:group`, `uid:gid`; empty for root).
  public func user() throws -> (uid: UInt32, gid: UInt32) {
    let text = run.user ?? ""
    guard !text.isEmpty else { return (0, 0) }
    let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
    let users = Self.table(passwd)
    let uid: UInt32
    var gid: UInt32?
    if let number = UInt32(parts[0]) {
      uid = number
      gid = users.first { UInt32($0[2]) == number }.flatMap { UInt32($0[3]) }
    } else {
      guard let entry = users.first(where: { $0[0] == parts[0] }), let number = UInt32(entry[2]) else {
        throw ClipError(.notFound, "user '\(parts[0])' is not in the image's /etc/passwd")
      }
      uid = number
      gid = UInt32(entry[3])
    }
    if parts.count > 1 {
      if let number = UInt32(parts[1]) {
        gid = number
      } else {
        guard let entry = Self.table(group).first(where: { $0[0] == parts[1] }), let number = UInt32(entry[2]) else {
          throw ClipError(.notFound, "group '\(parts[1])' is not in the image's /etc/group")
        }
        gid = number
      }
    }
    return (uid, gid ?? 0)
  }

  /// Rows of a colon-separated table with at least four fields.
  private static func table(_ bytes: [UInt8]?) -> [[String]] {
    guard let bytes else { return [] }
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap { line in
      let fields = line.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
      return fields.count >= 4 ? fields : nil
    }
  }

  /// The config.json bytes.
  public func json() throws -> [UInt8] {
    let (uid, gid) = try user()
    var environment = run.env ?? []
    if !environment.contains(where: { $0.hasPrefix("PATH=") }) { environment.insert(Self.defaultPath, at: 0) }
    let capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    let hook: (String) -> [String: Any] = { stage in
      ["path": hookExecutable, "args": ["clip", "hook", stage] + hookArguments]
    }
    let config: [String: Any] = [
      "ociVersion": "1.0.2",
      "process": [
        "terminal": false,
        "user": ["uid": uid, "gid": gid],
        "args": try arguments(),
        "env": environment,
        "cwd": (run.workingDir?.isEmpty ?? true) ? "/" : run.workingDir ?? "/",
        "capabilities": [
          "bounding": capabilities, "effective": capabilities, "permitted": capabilities, "ambient": capabilities,
        ],
        "rlimits": [["type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024]],
        "noNewPrivileges": true,
      ] as [String: Any],
      "root": ["path": "rootfs", "readonly": readonly],
      "hostname": "clip",
      "mounts": [
        ["destination": "/proc", "type": "proc", "source": "proc"],
        [
          "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        ],
        [
          "destination": "/dev/pts", "type": "devpts", "source": "devpts",
          "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        ],
        [
          "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
          "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ],
        [
          "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"],
        ],
        ["destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]],
        [
          "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        ],
      ] as [[String: Any]],
      "hooks": ["createRuntime": [hook("createRuntime")], "poststop": [hook("poststop")]],
      "annotations": annotations,
      "linux": [
        "resources": ["devices": [["allow": false, "access": "rwm"]]],
        "namespaces": [["type": "pid"], ["type": "network"], ["type": "ipc"], ["type": "uts"], ["type": "mount"]],
        "maskedPaths": [
          "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      ] as [String: Any],
    ]
    let data = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
    return Array(data) + [UInt8(ascii: "\n")]
  }
}
