//! `switchboard adapter new`: the project it writes, in Rust and in
//! JavaScript, builds with one command (`make package`), its first unit
//! tests pass, and the package passes `switchboard adapter test` against
//! the stub platform.

use std::path::Path;
use std::process::Command;

use switchboard_e2e::{switchboard_binary, workspace_root};

/// `adapter new NAME --lang LANG` in a fresh folder, then `make test` in
/// the project; returns the project folder (kept alive by `dir`) and what
/// `make test` printed, after asserting it succeeded.
fn new_project_make_test(dir: &Path, name: &str, lang: &str) -> String {
    let new = Command::new(switchboard_binary())
        .args(["adapter", "new", name, "--lang", lang, "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(new.status.success(), "{new:?}");
    let make = Command::new("make")
        .arg("test")
        .arg(format!("SWITCHBOARD={}", switchboard_binary().display()))
        // Rust: one target folder for every run, so the SDK's dependencies
        // are compiled once.
        .env("CARGO_TARGET_DIR", workspace_root().join("target/scaffold"))
        .current_dir(dir.join(name))
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&make.stdout),
        String::from_utf8_lossy(&make.stderr)
    );
    assert!(make.status.success(), "{output}");
    assert!(output.contains("9 passed, 0 failed, 0 skipped"), "{output}");
    output
}

#[test]
fn a_new_rust_adapter_builds_and_passes_the_contract_checks() {
    let dir = tempfile::tempdir().unwrap();
    let output = new_project_make_test(dir.path(), "acme_chat", "rust");
    assert!(
        output.contains("2 passed"),
        "the project's unit tests ran: {output}"
    );
    assert!(
        dir.path()
            .join("acme_chat/package/acme_chat_adapter.wasm")
            .is_file()
    );
}

#[test]
fn a_new_javascript_adapter_builds_and_passes_the_contract_checks() {
    let dir = tempfile::tempdir().unwrap();
    let output = new_project_make_test(dir.path(), "acme_js", "js");
    assert!(
        output.contains("# pass 3"),
        "the project's unit tests ran: {output}"
    );
    assert!(
        dir.path()
            .join("acme_js/package/acme_js_adapter.wasm")
            .is_file()
    );
}

#[test]
fn an_unknown_language_is_refused_naming_the_ones_offered() {
    let dir = tempfile::tempdir().unwrap();
    let new = Command::new(switchboard_binary())
        .args(["adapter", "new", "acme", "--lang", "cobol", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!new.status.success());
    let error = String::from_utf8_lossy(&new.stderr);
    assert!(error.contains("`rust` or `js`"), "{error}");
    assert!(!dir.path().join("acme").exists());
}
