//! The `switchboard` command: run campaigns, serve webhooks, inspect adapters.

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
