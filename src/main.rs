//! The `tollgate` binary: the command line lives in the library (`tollgate::cli`).

fn main() -> std::process::ExitCode {
    tollgate::cli::main()
}
