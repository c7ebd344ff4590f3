//! The adapter manifest: what an adapter package declares about itself.
//!
//! A package is a directory holding `manifest.toml` and the component it
//! names. The host trusts nothing the component says about its egress or
//! secrets: only what the manifest declares (and the operator allows) is
//! granted.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use switchboard_contract::ContractVersion;

use super::RuntimeError;
use super::egress::policy::parse_declared_host;

/// A parsed, validated `manifest.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Who the adapter is.
    pub adapter: AdapterSection,
    /// Where it may connect.
    #[serde(default)]
    pub egress: EgressSection,
    /// Which configuration keys it may read.
    #[serde(default)]
    pub config: ConfigSection,
}

/// `[adapter]`: identity and the component file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterSection {
    /// Channel name, e.g. `whatsapp`; must equal what `describe` returns.
    pub name: String,
    /// The adapter's own version.
    pub version: String,
    /// The contract version it was built against, e.g. `1.1.0`. Optional:
    /// the host reads the version from the component itself; when stated,
    /// it must agree.
    #[serde(default)]
    pub contract: Option<String>,
    /// Who publishes it.
    #[serde(default)]
    pub publisher: String,
    /// One line about it.
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest.
    pub component: PathBuf,
}

/// `[egress]`: hosts the adapter calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressSection {
    /// Host names (no scheme, no path), e.g. `graph.facebook.com`.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// `[config]`: the settings and secrets the adapter may read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSection {
    /// Non-secret keys.
    #[serde(default)]
    pub settings: Vec<String>,
    /// Secret keys.
    #[serde(default)]
    pub secrets: Vec<String>,
}

impl Manifest {
    /// Read and validate the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse and validate manifest text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RuntimeError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|error| RuntimeError::InvalidManifest {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        manifest.validate(path)?;
        Ok(manifest)
    }

    fn validate(&self, path: &Path) -> Result<(), RuntimeError> {
        let invalid = |reason: String| RuntimeError::InvalidManifest {
            path: path.to_owned(),
            reason,
        };
        let name = &self.adapter.name;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return Err(invalid(format!(
                "field `adapter.name`: `{name}` must be lowercase letters, digits, `-` or `_`"
            )));
        }
        if let Some(contract) = &self.adapter.contract
            && let Err(error) = ContractVersion::parse(contract)
        {
            return Err(invalid(format!("field `adapter.contract`: {error}")));
        }
        for host in &self.egress.hosts {
            parse_declared_host(host).map_err(|e| invalid(format!("field `egress.hosts`: {e}")))?;
        }
        let component = &self.adapter.component;
        if component.as_os_str().is_empty()
            || !component
                .components()
                .all(|part| matches!(part, Component::Normal(_) | Component::CurDir))
        {
            return Err(invalid(format!(
                "field `adapter.component`: `{}` must be a path inside the package folder (no `..`, no absolute path)",
                component.display()
            )));
        }
        Ok(())
    }

    /// The component file of the package whose folder is `package_dir`,
    /// refusing one that leaves the folder (through a symbolic link, say).
    pub fn component_path(&self, package_dir: &Path) -> Result<PathBuf, RuntimeError> {
        let path = package_dir.join(&self.adapter.component);
        let io = |path: &Path, source| RuntimeError::Io {
            path: path.to_owned(),
            source,
        };
        let real = path.canonicalize().map_err(|e| io(&path, e))?;
        let folder = package_dir.canonicalize().map_err(|e| io(package_dir, e))?;
        if !real.starts_with(&folder) {
            return Err(RuntimeError::InvalidManifest {
                path: package_dir.join("manifest.toml"),
                reason: format!(
                    "field `adapter.component`: `{}` resolves to {}, outside the package folder",
                    self.adapter.component.display(),
                    real.display()
                ),
            });
        }
        Ok(real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[adapter]
name = "whatsapp"
version = "0.1.0"
contract = "1.1.0"
component = "whatsapp.wasm"

[egress]
hosts = ["graph.facebook.com"]

[config]
settings = ["base_url"]
secrets = ["access_token"]
"#;

    #[test]
    fn parses_a_manifest() {
        let manifest = Manifest::parse(GOOD, Path::new("m.toml")).unwrap();
        assert_eq!(manifest.adapter.name, "whatsapp");
        assert_eq!(manifest.egress.hosts, ["graph.facebook.com"]);
        assert_eq!(manifest.config.secrets, ["access_token"]);
    }

    #[test]
    fn rejects_unsupported_contract_naming_the_field() {
        let text = GOOD.replace("1.1.0", "9.0.0");
        let error = Manifest::parse(&text, Path::new("plugins/x/manifest.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("plugins/x/manifest.toml"), "{error}");
        assert!(error.contains("adapter.contract"), "{error}");
        assert!(error.contains("9.0.0"), "{error}");
        assert!(error.contains("1.0.0, 1.1.0"), "{error}");
    }

    #[test]
    fn rejects_urls_in_egress_hosts() {
        let text = GOOD.replace("\"graph.facebook.com\"", "\"https://graph.facebook.com/\"");
        let error = Manifest::parse(&text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("egress.hosts"), "{error}");
    }

    #[test]
    fn egress_entries_may_name_a_port_but_nothing_else() {
        let with_port = GOOD.replace("\"graph.facebook.com\"", "\"api.example.com:8443\"");
        assert!(Manifest::parse(&with_port, Path::new("m.toml")).is_ok());
        for bad in [
            "user@api.example.com",
            "api.example.com/v1",
            "api example.com",
            "",
        ] {
            let text = GOOD.replace("\"graph.facebook.com\"", &format!("{bad:?}"));
            let error = Manifest::parse(&text, Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("egress.hosts"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_component_must_stay_inside_the_package() {
        for outside in ["../whatsapp/whatsapp.wasm", "/etc/passwd", "a/../../b.wasm"] {
            let text = GOOD.replace("\"whatsapp.wasm\"", &format!("{outside:?}"));
            let error = Manifest::parse(&text, Path::new("m.toml"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("adapter.component"), "{outside}: {error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("package");
        std::fs::create_dir(&package).unwrap();
        std::fs::write(dir.path().join("elsewhere.wasm"), b"x").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("elsewhere.wasm"),
            package.join("whatsapp.wasm"),
        )
        .unwrap();
        let manifest = Manifest::parse(GOOD, Path::new("m.toml")).unwrap();
        let error = manifest.component_path(&package).unwrap_err().to_string();
        assert!(error.contains("outside the package folder"), "{error}");
    }

    #[test]
    fn rejects_unknown_fields() {
        let text = format!("{GOOD}\n[filesystem]\npaths = [\"/\"]\n");
        assert!(Manifest::parse(&text, Path::new("m.toml")).is_err());
    }
}
