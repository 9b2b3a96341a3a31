//! The `m2m` command: the token service and its command line.

fn main() -> std::process::ExitCode {
    m2m_server::cli::main()
}
