//! Link the `servicectl` binary for a fast start (issue 19; every command is a new
//! process, and `status` is mostly start-up):
//!
//! - as a non-PIE executable: the dynamic loader then has no relative relocations to
//!   apply at each start (a PIE of this size spends about 0.3M instructions on them
//!   before `main`), and the position-independent code of the crates links into it
//!   unchanged. Only the binary: tests and build scripts are linked as usual.
//! - with the unwinder of libgcc_eh.a inside, so that libgcc_s.so.1 is not loaded:
//!   its constructor (`__cpu_indicator_init`) asks CPUID a dozen times, and in a
//!   virtual machine each CPUID traps to the hypervisor (6 µs on the machine of
//!   docs/performance.md): about 0.1 ms of every start. Whole-archive, so that the
//!   unwinder's symbols are defined before the linker meets `-lgcc_s` (std's), which
//!   `--as-needed` then leaves out; not bundled, so that the final link finds the
//!   archive where the C compiler keeps it. Backtraces and panics unwind as before.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo::rustc-link-arg-bins=-no-pie");
        if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu") {
            println!("cargo::rustc-link-lib=static:+whole-archive,-bundle=gcc_eh");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
