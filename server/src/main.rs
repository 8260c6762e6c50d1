//! `yibiao-server`: see [`yibiao_server::cli`].

fn main() -> std::process::ExitCode {
    yibiao_server::cli::main()
}
