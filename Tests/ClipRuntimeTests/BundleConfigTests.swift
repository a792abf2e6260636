import ClipCore
import ClipOCI
import Foundation
import Testing

@testable import ClipRuntime

@Suite struct BundleConfigTests {
  let passwd = Array("root:x:0:0:root:/root:/bin/bash\napp:x:1000:1001::/home/app:/bin/sh\nbroken\n".utf8)
  let group = Array("root:x:0:\nstaff:x:50:\n".utf8)

  func config(user: String?, command: [String]? = nil) -> BundleConfig {
    var config = BundleConfig(
      run: .init(user: user, env: ["LANG=C"], entrypoint: ["/entry"], cmd: ["--serve"], workingDir: "/srv"),
      command: command, annotations: [Annotation.image: "busybox"], hookExecutable: "/usr/local/bin/clip",
      hookArguments: ["--root", "/var/lib/clip"])
    config.passwd = passwd
    config.group = group
    return config
  }

  @Test(arguments: [
    ("", 0, 0), ("app", 1000, 1001), ("1000", 1000, 1001), ("app:staff", 1000, 50), ("4000:60", 4000, 60),
    ("root:50", 0, 50),
  ])
  func resolvesTheImageUser(user: String, uid: UInt32, gid: UInt32) throws {
    let resolved = try config(user: user).user()
    #expect(resolved.uid == uid && resolved.gid == gid)
  }

  @Test func unknownNamesAreErrors() throws {
    #expect(throws: ClipError.self) { try config(user: "nobody").user() }
    #expect(throws: ClipError.self) { try config(user: "app:wheel").user() }
  }

  @Test func writesARunnableConfig() throws {
    var bundle = config(user: "app")
    bundle.readonly = true
    let json = try #require(try JSONSerialization.jsonObject(with: Data(try bundle.json())) as? [String: Any])
    let process = try #require(json["process"] as? [String: Any])
    #expect(process["args"] as? [String] == ["/entry", "--serve"])
    #expect(process["cwd"] as? String == "/srv")
    #expect(process["env"] as? [String] == [BundleConfig.defaultPath, "LANG=C"])
    #expect(process["terminal"] as? Bool == false)
    let user = try #require(process["user"] as? [String: Any])
    #expect(user["uid"] as? Int == 1000 && user["gid"] as? Int == 1001)
    let root = try #require(json["root"] as? [String: Any])
    #expect(root["path"] as? String == "rootfs" && root["readonly"] as? Bool == true)
    #expect((json["annotations"] as? [String: String])?[Annotation.image] == "busybox")
    let hooks = try #require(json["hooks"] as? [String: [[String: Any]]])
    #expect(hooks["createRuntime"]?.first?["path"] as? String == "/usr/local/bin/clip")
    #expect(
      hooks["createRuntime"]?.first?["args"] as? [String] == [
        "clip", "hook", "createRuntime", "--root", "/var/lib/clip",
      ])
    #expect(hooks["poststop"]?.first?["args"] as? [String] == ["clip", "hook", "poststop", "--root", "/var/lib/clip"])
    let destinations = (json["mounts"] as? [[String: Any]])?.compactMap { $0["destination"] as? String }
    #expect(destinations?.starts(with: ["/proc", "/dev"]) == true)
  }

  @Test func aCommandReplacesEntrypointAndCmd() throws {
    #expect(try config(user: nil, command: ["sh", "-c", "true"]).arguments() == ["sh", "-c", "true"])
    let empty = BundleConfig(
      run: .init(), command: nil, annotations: [:], hookExecutable: "/clip", hookArguments: [])
    #expect(throws: ClipError.self) { try empty.arguments() }
  }
}
