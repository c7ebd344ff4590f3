//! The binary prints its address and serves the control API.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn binary_prints_listening_address() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard-simulator"))
        .args(["--listen", "127.0.0.1:0", "--whatsapp-mps", "10"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn simulator");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("read line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let health: serde_json::Value = client
        .get(format!("{base}/_sim/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    let throughput: serde_json::Value = client
        .get(format!("{base}/_sim/whatsapp/throughput"))
        .send()
        .await
        .expect("throughput")
        .json()
        .await
        .expect("json");
    child.kill().expect("kill");
    let _ = child.wait();
    assert_eq!(health["status"], "ok");
    assert_eq!(throughput["messages_per_second"], 10);
}
