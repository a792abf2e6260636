// swift-tools-version:6.0
// The protoc plugins `make protos` (generate.sh) uses, at pinned versions; not part of the clip package.
import PackageDescription

let package = Package(
  name: "clip-protoc-plugins",
  dependencies: [
    .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    .package(url: "https://github.com/grpc/grpc-swift-protobuf", exact: "2.4.1"),
  ],
  targets: [
    .executableTarget(
      name: "placeholder",
      dependencies: [
        .product(name: "protoc-gen-swift", package: "swift-protobuf"),
        .product(name: "protoc-gen-grpc-swift-2", package: "grpc-swift-protobuf"),
      ])
  ]
)
