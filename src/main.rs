//! The `servicectl` binary: everything is in the library; the CLI module parses,
//! calls and renders.

fn main() {
    std::process::exit(servicectl::cli::main());
}
