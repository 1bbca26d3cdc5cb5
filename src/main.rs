//! The `skidder` binary: everything lives in the library; see `skidder::cli`.

fn main() -> std::process::ExitCode {
    skidder::cli::main()
}
