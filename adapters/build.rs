//! Nothing to build: the build-dependency on `protoc-bin-vendored` only makes cargo download the
//! protoc binary that `tools/protoc` hands to libsignal's build script.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
