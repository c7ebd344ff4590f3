//! Support for the cross-crate tests: building adapter packages and small
//! helpers shared by the test files in `tests/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Build every adapter and test guest for `wasm32-wasip2` with
/// `scripts/build-adapters.sh` (once per test process; cargo's lock
/// serialises concurrent test binaries) and return the directory holding
/// the packages (`<name>/manifest.toml` plus the component).
pub fn adapter_packages() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = workspace_root();
        let out = root.join("target/wasm/packages");
        let status = Command::new("bash")
            .arg(root.join("scripts/build-adapters.sh"))
            .arg(&out)
            .stdout(std::process::Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => out,
            Ok(status) => panic!("scripts/build-adapters.sh failed with {status}"),
            Err(error) => panic!("could not run scripts/build-adapters.sh: {error}"),
        }
    })
}
