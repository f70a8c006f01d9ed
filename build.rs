//! Link the `servicectl` binary as a non-PIE executable (issue 19): the dynamic loader
//! then has no relative relocations to apply at each start (a PIE of this size spends
//! about 0.3M instructions on them before `main`), and the position-independent code
//! of the crates links into it unchanged. Only the binary: tests and build scripts are
//! linked as usual.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
