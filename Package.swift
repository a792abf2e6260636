// swift-tools-version:6.0
import PackageDescription

/// Our modules' settings. Release builds get the metadata of a concrete generic type (`[String: JSONValue]`'s
/// storage, say) by calling its accessor with the conformances the compiler knows, instead of by demangling its name
/// at run time: a demangled name's conformances are looked up by scanning every conformance record of the binary
/// (~11,000), once per type per process, which a hook start paid while reading its JSON (~0.25 ms of ~4).
let strict: [SwiftSetting] = [
  .unsafeFlags(["-warnings-as-errors"]),
  .unsafeFlags(
    ["-Xfrontend", "-disable-concrete-type-metadata-mangled-name-accessors"], .when(configuration: .release)),
]

/// How the clip executable is linked for a fast start (it runs twice per container as an OCI hook): lld, relative
/// relocations packed (DT_RELR: 26 KB instead of 3 MB to read and walk), no symbols exported (the dynamic symbol
/// table was 4 MB, and glibc's dladdr walks it), all bindings done at start (full RELRO: the GOT joins the relocated
/// data), the sections a start writes placed together at the front of the file, before .text, and the unwind tables
/// and ICU's 34 MB of data after all the code (Sources/clip/startup-layout.ld), and the functions a container start
/// runs first at the start of .text
/// (Sources/clip/startup-order.txt, from `make startup-order`; release builds give each function its own section).
/// Still position independent: a position-dependent link would save a start ~1 ms of relocation, but give up ASLR in
/// a daemon that parses registry bytes.
let startupLinking = [
  "-use-ld=lld", "-Xlinker", "--no-export-dynamic", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker",
  "-z", "-Xlinker", "now", "-Xlinker", "-T", "-Xlinker", Context.packageDirectory + "/Sources/clip/startup-layout.ld",
  "-Xlinker", "--symbol-ordering-file=" + Context.packageDirectory + "/Sources/clip/startup-order.txt", "-Xlinker",
  "--no-warn-symbol-ordering",
]

/// Release builds (linked with `--static-swift-stdlib`) link the C++ runtime the Swift runtime and ICU need
/// statically too: libstdc++ (every `-lstdc++` of the link finds Sources/clip/static-cxx/libstdc++.so first, a linker
/// script naming the static archive), and libgcc's unwinder. As shared libraries they were two more files to map,
/// relocate and look symbols up in (~0.7 ms of every start) and to read from disk on a cold start. Debug builds load
/// the Swift runtime as shared libraries, which bring the shared libstdc++ anyway.
let staticCxxRuntime = [
  "-Xclang-linker", "-L" + Context.packageDirectory + "/Sources/clip/static-cxx", "-Xclang-linker", "-static-libgcc",
]

let package = Package(
  name: "clip",
  platforms: [.macOS(.v14)],
  products: [
    .executable(name: "clip", targets: ["clip"])
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    .package(url: "https://github.com/grpc/grpc-swift-2", exact: "2.4.3"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
    .package(url: "https://github.com/grpc/grpc-swift-nio-transport", exact: "2.9.2"),
  ],
  targets: [
    // System libraries: a module map and one shim header each.
    .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    // libcrypto for the tests' own SHA-256; clip loads it on first use (CClipShims' clip_crypto.c, dlopen).
    .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    // libcurl's header only: clip_curl.c loads the library on first use (dlopen).
    .systemLibrary(name: "CCurl", providers: [.apt(["libcurl4-openssl-dev"])]),
    // libzstd, libfuse3, ISA-L and libseccomp: headers only, loaded on first use (CClipShims' clip_lazy.c).
    .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
    .systemLibrary(name: "CFuse3", providers: [.apt(["libfuse3-dev"])]),
    .systemLibrary(name: "CIsal", providers: [.apt(["libisal-dev"])]),
    .systemLibrary(name: "CSeccomp", providers: [.apt(["libseccomp-dev"])]),
    // Our own tiny C wrappers for what Swift cannot call (macros, variadics), and libcurl, libcrypto, libfuse3,
    // ISA-L, libzstd and libseccomp loaded on first use.
    .target(name: "CClipShims", dependencies: ["CZlib", "CCurl"]),

    .target(name: "ClipCore", dependencies: ["CClipShims", "CSeccomp"], swiftSettings: strict),
    .target(name: "ClipOCI", dependencies: ["ClipCore"], swiftSettings: strict),
    .target(
      name: "ClipArchive", dependencies: ["ClipCore", "ClipOCI", "CZlib", "CZstd", "CIsal", "CClipShims"],
      swiftSettings: strict),
    .target(
      name: "ClipIndex", dependencies: ["ClipCore", "ClipOCI", "ClipArchive", "CZstd"],
      swiftSettings: strict),
    .target(
      name: "ClipRegistry", dependencies: ["ClipCore", "ClipOCI", "CCurl", "CClipShims"],
      swiftSettings: strict),
    .target(
      name: "ClipStore",
      dependencies: ["ClipCore", "ClipOCI", "ClipArchive", "ClipIndex", "ClipRegistry", "CClipShims"],
      swiftSettings: strict),
    .target(
      name: "ClipFUSE", dependencies: ["ClipCore", "ClipArchive", "ClipIndex", "ClipStore", "CFuse3"],
      swiftSettings: strict),
    .target(
      name: "ClipRuntime",
      dependencies: ["CClipShims", "ClipCore", "ClipOCI", "ClipIndex", "ClipRegistry", "ClipStore"],
      swiftSettings: strict),
    // containerd's API (snapshots served; content, images, leases, diff called) and label names; Generated/ is
    // `make protos` output.
    .target(
      name: "ContainerdAPI",
      dependencies: [
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: strict),
    // The proxy snapshotter containerd calls.
    .target(
      name: "ClipSnapshotter",
      dependencies: [
        "ClipCore", "ContainerdAPI",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: strict),
    // A lazy pull into containerd: image records and remote snapshots through containerd's API.
    .target(
      name: "ClipContainerd",
      dependencies: [
        "ClipCore", "ClipOCI", "ClipRegistry", "ContainerdAPI",
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
        .product(name: "SwiftProtobuf", package: "swift-protobuf"),
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "clip",
      dependencies: [
        "CClipShims", "ClipCore", "ClipOCI", "ClipArchive", "ClipIndex", "ClipRegistry", "ClipStore", "ClipFUSE",
        "ClipRuntime", "ClipSnapshotter", "ClipContainerd", "ContainerdAPI",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "GRPCCore", package: "grpc-swift-2"),
        .product(name: "GRPCNIOTransportHTTP2Posix", package: "grpc-swift-nio-transport"),
      ],
      exclude: ["startup-layout.ld", "startup-order.txt", "static-cxx"],
      swiftSettings: strict,
      linkerSettings: [
        .unsafeFlags(startupLinking), .unsafeFlags(staticCxxRuntime, .when(configuration: .release)),
      ]),

    // Test-only helpers: a tar builder and compressors for test layers.
    .target(
      name: "ClipTestSupport",
      dependencies: ["CClipShims", "CZlib", "CZstd", "CCrypto", "ClipCore", "ClipIndex", "ClipOCI"],
      path: "Tests/ClipTestSupport"),
    .testTarget(name: "ClipCoreTests", dependencies: ["ClipCore"], swiftSettings: strict),
    .testTarget(
      name: "ClipArchiveTests", dependencies: ["ClipArchive", "ClipOCI", "ClipTestSupport"], swiftSettings: strict),
    .testTarget(
      name: "ClipIndexTests", dependencies: ["ClipIndex", "ClipArchive", "ClipTestSupport"],
      resources: [.copy("Fixtures")], swiftSettings: strict),
    .testTarget(name: "ClipRegistryTests", dependencies: ["ClipRegistry", "ClipOCI"], swiftSettings: strict),
    .testTarget(name: "ClipSnapshotterTests", dependencies: ["ClipSnapshotter", "ClipCore"], swiftSettings: strict),
    .testTarget(
      name: "ClipRuntimeTests",
      dependencies: ["ClipRuntime", "ClipOCI", "ClipIndex", "ClipArchive", "ClipTestSupport"],
      swiftSettings: strict),
    .testTarget(
      name: "ClipStoreTests", dependencies: ["ClipStore", "ClipRegistry", "ClipOCI", "ClipTestSupport"],
      swiftSettings: strict),
  ],
  swiftLanguageModes: [.v6]
)
