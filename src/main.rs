fn main() {
    std::process::exit(servicectl::cli::main());
}
