//! Signed packages from a BSP to a running host, with the real binary:
//! `adapter keygen`, `pack`, `verify` and `install`; a host that trusts one
//! key refuses unsigned, tampered and foreign-signed packages; and a new
//! version installed while a campaign is sending takes over with nothing
//! lost and nothing sent twice.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use switchboard_e2e::api::{count, submit, watch};
use switchboard_e2e::platforms::whatsapp;
use switchboard_e2e::{
    ServeProcess, adapter_packages, config_text, packages_with, switchboard_binary,
};
use switchboard_simulator::Simulator;

const WINBACK: &str = r#"
name = "swap-winback"
purpose = "marketing"
route = ["whatsapp"]
[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
"#;

fn switchboard(config: &Path, args: &[&str]) -> Output {
    Command::new(switchboard_binary())
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("switchboard runs")
}

fn stdout(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Make a key with `adapter keygen`; returns its file and public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.pem"));
    let output = switchboard(
        &dir.join("none.toml"),
        &["adapter", "keygen", "--out", key.to_str().unwrap()],
    );
    assert!(output.status.success(), "{}", stdout(&output));
    let text = stdout(&output);
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("public key: "))
        .expect("keygen prints the public key")
        .trim()
        .to_owned();
    (key, public)
}

/// A copy of the built WhatsApp package with `version` in its manifest.
fn whatsapp_package(dir: &Path, version: &str) -> PathBuf {
    let folder = dir.join(format!("whatsapp-{version}"));
    std::fs::create_dir_all(&folder).unwrap();
    let source = adapter_packages().join("whatsapp");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), folder.join(entry.file_name())).unwrap();
    }
    let manifest = std::fs::read_to_string(folder.join("manifest.toml")).unwrap();
    let manifest = manifest
        .lines()
        .map(|line| {
            if line.starts_with("version = ") {
                format!("version = \"{version}\"")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(folder.join("manifest.toml"), manifest + "\n").unwrap();
    std::fs::write(folder.join("README.md"), "# WhatsApp adapter\n").unwrap();
    folder
}

fn pack(config: &Path, folder: &Path, key: Option<&Path>, out: &Path) -> String {
    let mut args = vec![
        "adapter",
        "pack",
        folder.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(key) = key {
        args.extend(["--key", key.to_str().unwrap()]);
    }
    let output = switchboard(config, &args);
    assert!(output.status.success(), "{}", stdout(&output));
    stdout(&output)
}

async fn channels(client: &reqwest::Client, admin: &str) -> Vec<Value> {
    client
        .get(format!("{admin}/api/channels"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn channel<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|c| c["channel"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_packages_signed_by_a_trusted_key_load_and_a_new_version_swaps_in_mid_campaign() {
    let simulator = Simulator::start("127.0.0.1:0".parse().unwrap(), whatsapp::unlimited())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bsp_key, bsp_public) = keygen(dir.path(), "bsp");
    let (stranger_key, _) = keygen(dir.path(), "stranger");

    // The host trusts the BSP's key for WhatsApp and refuses unsigned
    // WhatsApp packages; the adapters directory holds an unsigned one.
    let packages = packages_with(&[]);
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        config_text(
            &simulator,
            packages.path(),
            &format!(
                "messages_per_second = 1500\nallow_unsigned = false\ntrusted_keys = [\"bsp\"]\n\n[trust]\nkeys = {{ \"bsp\" = \"{bsp_public}\" }}\n"
            ),
        ),
    )
    .unwrap();
    let serve = ServeProcess::start(&config);
    let client = switchboard_e2e::admin_client();
    let admin = serve.admin_url.clone();
    let loaded = channels(&client, &admin).await;
    assert!(
        channel(&loaded, "whatsapp").is_none(),
        "an unsigned WhatsApp package loaded: {loaded:?}"
    );
    assert!(
        channel(&loaded, "line").is_some(),
        "other channels load: {loaded:?}"
    );

    // Pack and verify: signed by the BSP, by a stranger, and unsigned.
    let v1 = whatsapp_package(dir.path(), "1.0.0");
    let signed = dir.path().join("whatsapp-1.0.0.sbpkg");
    let packed = pack(&config, &v1, Some(&bsp_key), &signed);
    assert!(packed.contains("digest:  sha256:"), "{packed}");
    let verify = switchboard(&config, &["adapter", "verify", signed.to_str().unwrap()]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("trusted: signed by `bsp`"),
        "{}",
        stdout(&verify)
    );

    let foreign = dir.path().join("foreign.sbpkg");
    pack(&config, &v1, Some(&stranger_key), &foreign);
    let verify = switchboard(&config, &["adapter", "verify", foreign.to_str().unwrap()]);
    assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
    assert!(
        stdout(&verify).contains("not among the keys trusted for channel `whatsapp`"),
        "{}",
        stdout(&verify)
    );
    let install = switchboard(
        &config,
        &[
            "adapter",
            "install",
            foreign.to_str().unwrap(),
            "--admin-url",
            &admin,
        ],
    );
    assert!(!install.status.success(), "{}", stdout(&install));

    let unsigned = dir.path().join("unsigned.sbpkg");
    pack(&config, &v1, None, &unsigned);
    let install = switchboard(
        &config,
        &[
            "adapter",
            "install",
            unsigned.to_str().unwrap(),
            "--admin-url",
            &admin,
        ],
    );
    assert!(!install.status.success(), "{}", stdout(&install));
    assert!(
        stdout(&install).contains("does not allow unsigned packages"),
        "{}",
        stdout(&install)
    );
    assert!(channel(&channels(&client, &admin).await, "whatsapp").is_none());

    // The signed package installs into the running host.
    let install = switchboard(
        &config,
        &[
            "adapter",
            "install",
            signed.to_str().unwrap(),
            "--admin-url",
            &admin,
        ],
    );
    assert!(install.status.success(), "{}", stdout(&install));
    assert!(
        stdout(&install).contains("the running host reloaded"),
        "{}",
        stdout(&install)
    );
    let loaded = channels(&client, &admin).await;
    let whatsapp = channel(&loaded, "whatsapp").expect("whatsapp loaded after install");
    assert_eq!(whatsapp["version"], "1.0.0");
    assert_eq!(whatsapp["signer"], "bsp");

    // A byte changed in the installed component: the next reload refuses
    // it and keeps serving the verified version.
    let installed = packages.path().join("whatsapp");
    let component = std::fs::read_dir(&installed)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wasm"))
        .unwrap();
    let original = std::fs::read(&component).unwrap();
    let mut tampered = original.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&component, &tampered).unwrap();
    let reload: Value = client
        .post(format!("{admin}/api/adapters/reload"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reload.to_string().contains("tampered"), "{reload}");
    assert_eq!(
        channel(&channels(&client, &admin).await, "whatsapp").unwrap()["version"],
        "1.0.0"
    );
    std::fs::write(&component, &original).unwrap();

    // Version 1.1.0 is installed while a 3,000-recipient campaign sends.
    let v2 = whatsapp_package(dir.path(), "1.1.0");
    let signed_v2 = dir.path().join("whatsapp-1.1.0.sbpkg");
    pack(&config, &v2, Some(&bsp_key), &signed_v2);
    let mut audience = String::from("profile_id,name,phone,consent_whatsapp_marketing\n");
    for i in 0..3_000 {
        audience.push_str(&format!("p{i:05},N{i},+491515{i:07},yes\n"));
    }
    submit(&client, &admin, WINBACK, &audience).await;
    watch(&client, &admin, "swap-winback", |s| count(s, "sent") >= 300).await;
    let install = switchboard(
        &config,
        &[
            "adapter",
            "install",
            signed_v2.to_str().unwrap(),
            "--admin-url",
            &admin,
        ],
    );
    assert!(install.status.success(), "{}", stdout(&install));
    let during = watch(&client, &admin, "swap-winback", |_| true).await;
    assert!(
        count(&during, "sent") < 3_000,
        "the swap happened mid-campaign: {during}"
    );
    let settled = watch(&client, &admin, "swap-winback", |s| s["open"] == 0).await;
    assert_eq!(count(&settled, "sent"), 3_000, "{settled}");
    let received = simulator.whatsapp().recipient_counts();
    assert_eq!(received.len(), 3_000, "every recipient reached");
    assert!(
        received.values().all(|&n| n == 1),
        "someone got the message twice: {:?}",
        received
            .iter()
            .filter(|(_, n)| **n > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    let loaded = channels(&client, &admin).await;
    assert_eq!(channel(&loaded, "whatsapp").unwrap()["version"], "1.1.0");

    // A signed package whose component the host cannot load is refused at
    // install, before any host sees it; the installed version stays.
    let broken = whatsapp_package(dir.path(), "1.2.0");
    let broken_component = std::fs::read_dir(&broken)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wasm"))
        .unwrap();
    std::fs::write(&broken_component, b"not a component").unwrap();
    let signed_broken = dir.path().join("whatsapp-1.2.0.sbpkg");
    pack(&config, &broken, Some(&bsp_key), &signed_broken);
    let install = switchboard(
        &config,
        &[
            "adapter",
            "install",
            signed_broken.to_str().unwrap(),
            "--admin-url",
            &admin,
        ],
    );
    assert!(!install.status.success(), "{}", stdout(&install));
    assert!(
        stdout(&install).contains("refused: the host cannot load it"),
        "{}",
        stdout(&install)
    );
    let manifest = std::fs::read_to_string(packages.path().join("whatsapp/manifest.toml")).unwrap();
    assert!(manifest.contains("version = \"1.1.0\""), "{manifest}");
    let loaded = channels(&client, &admin).await;
    assert_eq!(channel(&loaded, "whatsapp").unwrap()["version"], "1.1.0");
    drop(serve);
    tokio::time::sleep(Duration::from_millis(10)).await;
    simulator.shutdown().await.unwrap();
}
