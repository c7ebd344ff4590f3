//! One host, several contract versions: a component built against the
//! released 1.0.0 contract (the WhatsApp adapter as it shipped, committed
//! under `tests/fixtures/contract-1.0.0/`) loads and sends beside the
//! 1.2.0 adapters (the Rust SDK's) and the 1.1.0 one (Telegram, built with
//! ComponentizeJS), each through its own shim; a component claiming a
//! version the host does not serve is refused with a message naming the
//! versions it does; the version is read from the component's exports.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use switchboard_contract::ContractVersion;
use switchboard_e2e::platforms::line::user_id;
use switchboard_e2e::{Harness, contract_1_0_whatsapp, packages_with};
use switchboard_runtime::{AdapterRuntime, RuntimeError, RuntimeOptions};
use switchboard_simulator::SimulatorConfig;
use switchboard_store::SendQuery;

const CAMPAIGN: &str = r#"
name = "mixed-versions"
purpose = "marketing"
route = ["whatsapp", "line"]

[message]
text = "Hi {{name}}, 20% off today"

[templates.whatsapp]
name = "winback_offer"
language = "en_US"
parameters = ["{{name}}"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_component_sends_beside_1_2_and_1_1_adapters() {
    let packages = packages_with(&[("whatsapp", &contract_1_0_whatsapp())]);
    let harness = Harness::start_with_adapters(SimulatorConfig::default(), packages.path()).await;
    let whatsapp = harness
        .host
        .runtime
        .get("whatsapp")
        .expect("whatsapp loaded");
    let line = harness.host.runtime.get("line").expect("line loaded");
    assert_eq!(whatsapp.contract, ContractVersion::V1_0);
    assert_eq!(line.contract, ContractVersion::V1_2);
    let telegram = harness
        .host
        .runtime
        .get("telegram")
        .expect("telegram loaded");
    assert_eq!(telegram.contract, ContractVersion::V1_1);
    // The 1.0.0 window rule arrives as a list of one.
    assert!(matches!(
        &whatsapp.info.free_form,
        switchboard_contract::model::FreeFormRule::WithinWindow(rules) if rules.len() == 1
    ));

    let audience = harness.write(
        "audience.csv",
        &format!(
            "profile_id,name,phone,line_id,consent_whatsapp_marketing,consent_line_marketing\n\
             p1,Ana,+4915112340001,,yes,\n\
             p2,Ben,+4915112340002,{},no,yes\n\
             p3,Cem,,{},,yes\n",
            user_id(2),
            user_id(3)
        ),
    );
    let campaign = harness.write("campaign.toml", CAMPAIGN);
    let report = harness.send(&campaign, &audience).await.unwrap();
    assert_eq!(report.count("sent"), 3, "{}", report.summary());

    let whatsapp_to: BTreeSet<String> = harness
        .simulator
        .whatsapp()
        .messages()
        .into_iter()
        .map(|m| m.to)
        .collect();
    assert_eq!(whatsapp_to, BTreeSet::from(["4915112340001".to_owned()]));
    let line_to: BTreeSet<String> = harness
        .simulator
        .line()
        .messages()
        .into_iter()
        .map(|m| m.to)
        .collect();
    assert_eq!(line_to, BTreeSet::from([user_id(2), user_id(3)]));
    // The 1.0.0 receipt's id reached the outbox through the shim.
    let sent = harness
        .host
        .store
        .sends(SendQuery {
            campaign: Some("mixed-versions".into()),
            ..SendQuery::default()
        })
        .await
        .unwrap();
    let on_whatsapp = sent.iter().find(|s| s.channel == "whatsapp").unwrap();
    assert!(
        on_whatsapp
            .platform_message_id
            .as_deref()
            .is_some_and(|id| id.starts_with("wamid.")),
        "{on_whatsapp:?}"
    );
}

/// A copy of the 1.0.0 fixture whose exported interface claims `version`
/// (same length, so the component stays valid).
fn fixture_claiming(version: &str, dir: &Path) {
    let fixture = contract_1_0_whatsapp();
    std::fs::create_dir_all(dir).unwrap();
    let bytes = std::fs::read(fixture.join("switchboard_adapter_whatsapp.wasm")).unwrap();
    let from = b"switchboard:channel/adapter@1.0.0";
    let to = format!("switchboard:channel/adapter@{version}");
    assert_eq!(from.len(), to.len());
    let mut patched = bytes.clone();
    let mut replaced = 0;
    let mut at = 0;
    while let Some(offset) = patched[at..].windows(from.len()).position(|w| w == from) {
        let start = at + offset;
        patched[start..start + from.len()].copy_from_slice(to.as_bytes());
        at = start + from.len();
        replaced += 1;
    }
    assert!(replaced > 0, "the fixture names its export");
    std::fs::write(dir.join("switchboard_adapter_whatsapp.wasm"), patched).unwrap();
    let manifest = std::fs::read_to_string(fixture.join("manifest.toml")).unwrap();
    let manifest: String = manifest
        .lines()
        .filter(|line| !line.starts_with("contract"))
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(dir.join("manifest.toml"), manifest).unwrap();
}

fn runtime() -> AdapterRuntime {
    // The fixtures are unsigned; what is checked here is the contract.
    let options = RuntimeOptions {
        trust: switchboard_runtime::PackageTrust {
            allow_unsigned: true,
            ..Default::default()
        },
        ..Default::default()
    };
    AdapterRuntime::new(options, HashMap::new()).unwrap()
}

#[tokio::test]
async fn a_component_of_an_unknown_version_is_refused_naming_the_versions_served() {
    let dir = tempfile::tempdir().unwrap();
    fixture_claiming("9.0.0", dir.path());
    let error = match runtime()
        .load_package(&dir.path().join("manifest.toml"))
        .await
    {
        Err(error) => error,
        Ok(_) => panic!("a 9.0.0 component must not load"),
    };
    assert!(
        matches!(error, RuntimeError::InvalidComponent { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(
        text.contains(
            "contract version `9.0.0` is not served by this host (it serves 1.0.0, 1.1.0, 1.2.0)"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn the_version_comes_from_the_component_not_the_manifest() {
    // The 1.0.0 component under a manifest that claims 1.1.0.
    let dir = tempfile::tempdir().unwrap();
    let fixture = contract_1_0_whatsapp();
    for file in ["manifest.toml", "switchboard_adapter_whatsapp.wasm"] {
        std::fs::copy(fixture.join(file), dir.path().join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(dir.path().join("manifest.toml"))
        .unwrap()
        .replace("contract = \"1.0.0\"", "contract = \"1.1.0\"");
    std::fs::write(dir.path().join("manifest.toml"), manifest).unwrap();
    let error = match runtime()
        .load_package(&dir.path().join("manifest.toml"))
        .await
    {
        Err(error) => error.to_string(),
        Ok(_) => panic!("a mislabelled manifest must not load"),
    };
    assert!(
        error.contains("it implements contract 1.0.0 but the manifest says `contract = \"1.1.0\"`"),
        "{error}"
    );
}
