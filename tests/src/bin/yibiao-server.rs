//! The real `yibiao-server` command line, built here so end-to-end tests can run it as a
//! child process (`CARGO_BIN_EXE_yibiao-server`).

fn main() -> std::process::ExitCode {
    yibiao_server::cli::main()
}
