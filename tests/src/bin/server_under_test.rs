//! The real `yibiao-server` command line, built here so end-to-end tests can run it as a
//! child process (`CARGO_BIN_EXE_server_under_test`); named apart from the real binary so
//! the two never overwrite each other in `target/`.

fn main() -> std::process::ExitCode {
    yibiao_server::cli::main()
}
