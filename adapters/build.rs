//! Nothing to build: the build-dependency on `protoc-bin-vendored` only makes cargo download the
//! protoc binary that `tools/protoc` hands to libsignal's build script. The migrations are
//! embedded by `sqlx::migrate!`, which cannot tell cargo about a new file on stable Rust: a
//! migration added to `migrations/` rebuilds the crate through this.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=migrations");
}
