//! The `switchboard` command: run campaigns, serve webhooks, inspect adapters.

/// mimalloc instead of the system allocator: the host allocates and frees
/// many small objects per message (HTTP headers, guest resources, SQLite
/// rows), and glibc's allocator spent a measurable share of the CPU on it
/// (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    switchboard::cli::main()
}
