//! `switchboard adapter test`: the contract checks as a command an author
//! runs on their own package — against the built-in stub platform, against
//! their own mock (here, the project's simulator), on a folder or a package
//! file — and the report names what failed.

use std::process::{Command, Output};

use switchboard::conformance::{self, Status};
use switchboard_e2e::{adapter_packages, switchboard_binary};
use switchboard_simulator::{Simulator, SimulatorConfig};

fn adapter_test(args: &[&str]) -> (Output, String) {
    let output = Command::new(switchboard_binary())
        .args([
            "--config",
            "/nonexistent/switchboard.toml",
            "adapter",
            "test",
        ])
        .args(args)
        .output()
        .expect("switchboard runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, text)
}

fn line_of<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.contains(check))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whatsapp_package_passes_against_the_simulator_as_its_mock() {
    let simulator = Simulator::start("127.0.0.1:0".parse().unwrap(), SimulatorConfig::default())
        .await
        .unwrap();
    let whatsapp = simulator.whatsapp();
    let package = adapter_packages().join("whatsapp");
    let (output, report) = adapter_test(&[
        package.to_str().unwrap(),
        "--against",
        &simulator.base_url(),
        "--setting",
        &format!("phone_number_id={}", whatsapp.phone_number_id()),
        "--secret",
        &format!("access_token={}", whatsapp.access_token()),
        "--to",
        "+4915112345678",
    ]);
    assert!(output.status.success(), "{report}");
    // The sample is free-form text outside any window: the simulator
    // answers WhatsApp's re-engagement error, a classified outcome.
    assert!(
        line_of(&report, "one message, one outcome").starts_with("PASS"),
        "{report}"
    );
    assert!(report.contains("0 failed"), "{report}");
    assert!(
        !whatsapp.messages().is_empty() || whatsapp.stats().rejected_total > 0,
        "the requests reached the simulator"
    );
    simulator.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_that_accepts_forged_webhooks_fails_naming_the_check() {
    let hostile = adapter_packages().join("hostile");
    let (output, report) = adapter_test(&[hostile.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let forged = line_of(&report, "forged webhook refused");
    assert!(
        forged.starts_with("FAIL") && forged.contains("got 200"),
        "{report}"
    );
    assert!(report.contains("1 failed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_file_is_tested_like_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("line.sbpkg");
    let packed = Command::new(switchboard_binary())
        .args([
            "--config",
            "/nonexistent/switchboard.toml",
            "adapter",
            "pack",
        ])
        .arg(adapter_packages().join("line"))
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(packed.status.success(), "{packed:?}");
    let (output, report) = adapter_test(&[file.to_str().unwrap()]);
    assert!(output.status.success(), "{report}");
    assert!(
        line_of(&report, "loads and describes").starts_with("PASS"),
        "{report}"
    );
}

/// The repository's own adapters pass the same checks, in-process, against
/// the stub platform.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_in_this_repository_passes_the_checks() {
    for channel in ["whatsapp", "line", "kakaotalk", "wechat", "rcs", "telegram"] {
        let report = conformance::run(
            &adapter_packages().join(channel),
            &conformance::Options::default(),
        )
        .await
        .unwrap();
        assert!(report.passed(), "{channel}:\n{}", report.render());
        for check in ["forged webhook refused", "full batch, one outcome each"] {
            assert_eq!(
                report.check(check).map(|c| c.status),
                Some(Status::Pass),
                "{channel}:\n{}",
                report.render()
            );
        }
    }
}
