//! `switchboard adapter new NAME`: a working Rust adapter project to start
//! from (JavaScript is in [`crate::scaffold_js`]) — a crate against the SDK, with its manifest, a README, a first unit
//! test and a Makefile whose `package` target builds the component and lays
//! out the package folder that `switchboard adapter test` and `pack` take.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Where this build of `switchboard` found the Rust SDK (`sdk/` beside the
/// crates), for the new crate's path dependency.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

/// Check a channel name: lowercase ASCII letters, digits and `_`, starting
/// with a letter, at most 32 characters (it becomes a URL segment, a config
/// table and a crate name).
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a channel name: use lowercase letters, digits and `_`, starting with a letter, at most 32 characters"
        );
    }
    Ok(())
}

/// Write a new Rust adapter project for channel `name` into `dir/name`;
/// returns the project folder.
pub fn new_rust(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name)?;
    let sdk = sdk.map(Path::to_owned).unwrap_or_else(default_sdk);
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "the Rust SDK is not at {}; pass --sdk with the path of Switchboard's `sdk/` folder",
            sdk.display()
        )
    })?;
    let project = dir.join(name);
    if project.exists() {
        bail!(
            "{} already exists; choose another name or folder",
            project.display()
        );
    }
    let crate_name = format!("{name}-adapter");
    let component = format!("{}.wasm", crate_name.replace('-', "_"));
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{component}}", &component)
            .replace("{{sdk}}", &sdk.display().to_string())
    };
    std::fs::create_dir_all(project.join("src"))
        .with_context(|| format!("making {}", project.display()))?;
    for (file, template) in [
        ("Cargo.toml", CARGO_TOML),
        ("manifest.toml", MANIFEST),
        ("README.md", README),
        ("Makefile", MAKEFILE),
        (".gitignore", "/target\n/package\n"),
        ("src/lib.rs", LIB_RS),
    ] {
        let path = project.join(file);
        std::fs::write(&path, fill(template))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(project)
}

const CARGO_TOML: &str = r#"[package]
name = "{{crate}}"
version = "0.1.0"
edition = "2024"
publish = false

# A project of its own, not a member of any workspace above it.
[workspace]

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
switchboard-sdk = { path = "{{sdk}}" }
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#;

/// The manifest of a new project (both languages).
pub(crate) const MANIFEST: &str = r#"[adapter]
name = "{{name}}"
version = "0.1.0"
publisher = "you"
description = "{{name}} messaging API"
component = "{{component}}"

# Every host the adapter calls. Operators approve them (`allow_hosts`) and
# may point them at a mock (`endpoints`).
[egress]
hosts = ["api.{{name}}.example"]

[config]
settings = []
secrets = ["api_key", "webhook_secret"]
"#;

const MAKEFILE: &str = r#"# `make package` builds the component and lays out package/ (what the host
# loads and `switchboard adapter pack` signs); `make test` runs the unit
# tests and the contract checks.
SWITCHBOARD ?= switchboard
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

package:
	cargo build --release --target wasm32-wasip2
	mkdir -p package
	cp manifest.toml README.md $(TARGET_DIR)/wasm32-wasip2/release/{{component}} package/

test: package
	cargo test
	$(SWITCHBOARD) adapter test package

.PHONY: package test
"#;

const README: &str = r#"# {{name}} adapter for Switchboard

A Switchboard channel adapter: a WebAssembly component built against the
`switchboard:channel` contract with the Rust SDK.

## Build, check, sign, install

```sh
rustup target add wasm32-wasip2
make package                                   # builds package/ (manifest, component, README)
cargo test                                     # your unit tests
switchboard adapter test package               # the contract checks, against a stub platform
switchboard adapter test package --against http://127.0.0.1:9000 \
    --secret api_key=… --to <a recipient>      # against your own mock of the platform
switchboard adapter keygen --out signing-key.pem
switchboard adapter pack package --key signing-key.pem --out {{name}}-0.1.0.sbpkg
switchboard adapter install {{name}}-0.1.0.sbpkg   # on the host, after trusting your key
```

## What to change

- `src/lib.rs`: `describe` (address kind, limits, windows, templates),
  `request_body` and `classify` (the platform's payload and error codes),
  `handle_webhook` (its signature scheme and events).
- `manifest.toml`: the hosts the adapter calls and the configuration keys
  it reads; they must match what `describe` declares.
"#;

const LIB_RS: &str = r##"//! The {{name}} adapter: sends text messages with one HTTPS request each
//! and verifies webhooks signed with HMAC-SHA256 over the body.

use switchboard_sdk::prelude::*;

/// The platform's API host (declared in manifest.toml).
const API: &str = "https://api.{{name}}.example";

struct ThisAdapter;

impl Adapter for ThisAdapter {
    fn describe() -> ChannelInfo {
        let mut info = ChannelInfo::new("{{name}}", "{{name}}", AddressKind::PhoneNumber);
        info.egress_hosts = vec!["api.{{name}}.example".into()];
        info.secrets = vec!["api_key".into(), "webhook_secret".into()];
        info
    }

    fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
        batch.iter().map(send_one).collect()
    }

    fn handle_webhook(request: HttpRequest) -> WebhookResult {
        let secret = config::secret("webhook_secret").unwrap_or_default();
        let signature = request.header("x-signature").unwrap_or_default();
        if secret.is_empty()
            || !signature::verify_hmac_sha256_hex(secret.as_bytes(), &request.body, signature)
        {
            return WebhookResult::reply(HttpResponse::unauthorized("bad signature"));
        }
        WebhookResult::accepted(Vec::new())
    }
}

fn send_one(message: &OutboundMessage) -> Result<Receipt, SendError> {
    let key = config::require_secret("api_key")?;
    let response = Request::post(&format!("{API}/v1/messages"))
        .bearer(&key)
        .json(&request_body(message))
        .send()?;
    classify(response.status, &response.text())
}

/// The platform's JSON for one message.
pub fn request_body(message: &OutboundMessage) -> serde_json::Value {
    serde_json::json!({
        "to": message.to,
        "text": message.text().unwrap_or_default(),
        "idempotency_key": message.idempotency_key,
    })
}

/// The platform's reply as an outcome: the message id on success, a
/// classified error otherwise.
pub fn classify(status: u16, body: &str) -> Result<Receipt, SendError> {
    let failure = || Failure::new(status.to_string(), body.chars().take(200).collect::<String>());
    match status {
        200 | 201 => {
            let id = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(Receipt::new(id))
        }
        401 | 403 => Err(SendError::AuthFailed(failure())),
        429 => Err(SendError::rate_limited(RateLimitScope::Sender, None, failure())),
        500..=599 => Err(SendError::Transient(failure())),
        _ => Err(SendError::Permanent(failure())),
    }
}

switchboard_sdk::export_adapter!(ThisAdapter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified() {
        let receipt = classify(200, r#"{"id":"m-1"}"#).expect("accepted");
        assert_eq!(receipt.platform_message_id.as_deref(), Some("m-1"));
        assert!(matches!(classify(401, ""), Err(SendError::AuthFailed(_))));
        assert!(matches!(classify(503, ""), Err(SendError::Transient(_))));
        assert!(matches!(classify(400, "bad"), Err(SendError::Permanent(_))));
    }

    #[test]
    fn describe_declares_the_manifest_hosts() {
        let info = <ThisAdapter as Adapter>::describe();
        assert_eq!(info.name, "{{name}}");
        assert_eq!(info.egress_hosts, ["api.{{name}}.example"]);
    }
}
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_checked_with_the_rule_in_the_error() {
        for good in ["acme", "acme_chat", "zalo2"] {
            check_name(good).unwrap();
        }
        for bad in [
            "",
            "Acme",
            "2acme",
            "acme-chat",
            "acme/../x",
            &"a".repeat(33),
        ] {
            let error = check_name(bad).unwrap_err().to_string();
            assert!(error.contains("lowercase letters"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_project_is_written_once_with_its_names_filled_in() {
        let dir = tempfile::tempdir().unwrap();
        let project = new_rust("acme", dir.path(), None).unwrap();
        let manifest = std::fs::read_to_string(project.join("manifest.toml")).unwrap();
        assert!(manifest.contains("name = \"acme\""), "{manifest}");
        assert!(
            manifest.contains("component = \"acme_adapter.wasm\""),
            "{manifest}"
        );
        let lib = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
        assert!(!lib.contains("{{"), "unfilled placeholder in src/lib.rs");
        let cargo = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("switchboard-sdk = { path = \"/"), "{cargo}");
        let again = new_rust("acme", dir.path(), None).unwrap_err().to_string();
        assert!(again.contains("already exists"), "{again}");
        let no_sdk = new_rust("other", dir.path(), Some(Path::new("/nowhere/sdk")))
            .unwrap_err()
            .to_string();
        assert!(no_sdk.contains("--sdk"), "{no_sdk}");
    }
}
