//! `switchboard adapter …`: what an author, a BSP and an operator do with
//! packages — run the contract checks on one, make a signing key, pack and
//! sign a package into one file, verify one, and install one into a host
//! (loading it into the running host).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use switchboard_package::keys::{public_key, read_signing_key, write_signing_key};
use switchboard_package::{
    PackageContents, PublicKey, TrustError, TrustStore, generate_signing_key, pack, sign_folder,
    unpack,
};
use switchboard_runtime::Manifest;

use crate::config::Config;

/// The `adapter` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Start a new adapter project (Rust or JavaScript: the code, its
    /// manifest, README, first tests and a Makefile).
    New {
        /// The channel name (lowercase letters, digits, `_`).
        name: String,
        /// The folder to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The language: `rust` (a crate against the SDK) or `js`
        /// (JavaScript, built with ComponentizeJS).
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Switchboard's `sdk/` folder (default: the one this binary was
        /// built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Make an ed25519 signing key (PKCS#8 PEM) and print its public key
    /// for operators' `[trust] keys`.
    Keygen {
        /// Where to write the private key (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Pack a package folder (manifest.toml, the component, README.md)
    /// into one signed file.
    Pack {
        /// The package folder.
        folder: PathBuf,
        /// The signing key (from `adapter keygen`); without it the package
        /// is unsigned, which hosts refuse unless the operator allows it.
        #[arg(long)]
        key: Option<PathBuf>,
        /// The package file to write (default: <name>-<version>.sbpkg).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Check a package file: its digest, its signer, and whether this
    /// host's configuration trusts it for its channel.
    Verify {
        /// The package file.
        package: PathBuf,
        /// A public key to trust besides the configuration's
        /// (`ed25519:<base64>`); may be repeated.
        #[arg(long = "trust")]
        trust: Vec<String>,
    },
    /// Run the contract checks on a package (folder or file) against a stub
    /// platform on loopback, or against your own mock with `--against`.
    Test {
        /// The package folder or `.sbpkg` file.
        package: PathBuf,
        /// Point every declared host at this base URL (your platform mock)
        /// instead of the built-in stub.
        #[arg(long)]
        against: Option<String>,
        /// A setting to grant, `KEY=VALUE`; may be repeated.
        #[arg(long = "setting", value_parser = key_value)]
        settings: Vec<(String, String)>,
        /// A secret to grant, `KEY=VALUE`; may be repeated (declared secrets
        /// not given get a placeholder).
        #[arg(long = "secret", value_parser = key_value)]
        secrets: Vec<(String, String)>,
        /// A recipient the platform (or mock) accepts; may be repeated.
        /// Default: made-up addresses of the channel's address kind.
        #[arg(long = "to")]
        recipients: Vec<String>,
    },
    /// Verify a package file and install it into the adapters directory;
    /// a running host then loads it (through the admin API).
    Install {
        /// The package file.
        package: PathBuf,
        /// Only install; do not ask the running host to reload.
        #[arg(long)]
        no_reload: bool,
        /// The running host's admin API (default: `server.admin_listen`).
        #[arg(long)]
        admin_url: Option<String>,
    },
}

/// Run one `adapter` subcommand.
pub async fn run(config_path: &Path, command: AdapterCommand) -> anyhow::Result<ExitCode> {
    match command {
        AdapterCommand::New {
            name,
            dir,
            lang,
            sdk,
        } => {
            let project = match lang.as_str() {
                "rust" => crate::scaffold::new_rust(&name, &dir, sdk.as_deref())?,
                "js" | "javascript" => crate::scaffold_js::new_js(&name, &dir)?,
                other => {
                    bail!("`--lang {other}` is not one this command writes: choose `rust` or `js`")
                }
            };
            println!("wrote {}", project.display());
            println!(
                "next: cd {} && make package && switchboard adapter test package",
                project.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Keygen { out } => {
            let key = generate_signing_key();
            write_signing_key(&key, &out)?;
            let public = public_key(&key);
            println!("wrote {} (keep it secret)", out.display());
            println!("public key: {public}");
            println!("key id:     {}", public.id());
            println!(
                "operators trust it with:\n  [trust]\n  keys = {{ \"<name>\" = \"{public}\" }}"
            );
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Pack { folder, key, out } => {
            let manifest = Manifest::load(&folder.join("manifest.toml"))?;
            let staging = tempfile::tempdir().context("making a staging folder")?;
            let component = manifest.adapter.component.clone();
            let mut names = vec![PathBuf::from("manifest.toml"), component.clone()];
            if folder.join("README.md").is_file() {
                names.push(PathBuf::from("README.md"));
            }
            for name in &names {
                if name.components().count() != 1 {
                    bail!(
                        "{}: field `adapter.component`: `{}` must be a file at the top of the package folder",
                        folder.join("manifest.toml").display(),
                        name.display()
                    );
                }
                std::fs::copy(folder.join(name), staging.path().join(name))
                    .with_context(|| format!("copying {}", folder.join(name).display()))?;
            }
            let signed = match &key {
                Some(key) => Some(sign_folder(staging.path(), &read_signing_key(key)?)?),
                None => None,
            };
            let out = out.unwrap_or_else(|| {
                PathBuf::from(format!(
                    "{}-{}.sbpkg",
                    manifest.adapter.name, manifest.adapter.version
                ))
            });
            pack(staging.path(), &out)?;
            let digest = switchboard_package::package_digest(staging.path())?;
            println!("wrote {}", out.display());
            println!(
                "channel: {} v{}",
                manifest.adapter.name, manifest.adapter.version
            );
            println!("digest:  {digest}");
            match signed {
                Some(signature) => println!("signed by key {}", signature.key_id),
                None => {
                    println!("UNSIGNED: hosts refuse it unless the operator sets allow_unsigned")
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Verify { package, trust } => {
            let config = load_config_if_present(config_path)?;
            let opened = Opened::unpack(&package)?;
            let (mut keys, allowed, allow_unsigned) =
                channel_trust(config.as_ref(), &opened.manifest.adapter.name);
            for (i, key) in trust.iter().enumerate() {
                let key = PublicKey::parse(key).map_err(anyhow::Error::msg)?;
                keys.insert(format!("--trust #{}", i + 1), key);
            }
            let channel = &opened.manifest.adapter.name;
            println!(
                "{}: channel `{channel}` v{}, digest {}",
                package.display(),
                opened.manifest.adapter.version,
                opened.contents.digest
            );
            match keys.admit(&opened.contents, channel, allowed.as_ref(), allow_unsigned) {
                Ok(Some((key, key_id))) => {
                    println!("trusted: signed by `{key}` (key id {key_id})");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(None) => {
                    println!(
                        "unsigned: this host's configuration allows unsigned packages for the channel"
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    if let Some(signature) = &opened.contents.signature {
                        println!("signed by key id {}", signature.key_id);
                    }
                    println!("refused: {error}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        AdapterCommand::Test {
            package,
            against,
            settings,
            secrets,
            recipients,
        } => {
            let options = crate::conformance::Options {
                against,
                settings: settings.into_iter().collect(),
                secrets: secrets.into_iter().collect(),
                recipients,
            };
            let report = if package.is_file() {
                let opened = Opened::unpack(&package)?;
                crate::conformance::run(&opened.path(), &options).await?
            } else {
                crate::conformance::run(&package, &options).await?
            };
            print!("{}", report.render());
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AdapterCommand::Install {
            package,
            no_reload,
            admin_url,
        } => {
            let config = Config::load(config_path)?;
            let admin_url = (!no_reload).then(|| {
                admin_url.unwrap_or_else(|| format!("http://{}", config.server.admin_listen))
            });
            install(config_path, &config, &package, admin_url.as_deref()).await
        }
    }
}

/// Parse `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// A package file unpacked into a temporary folder, with its manifest.
struct Opened {
    folder: tempfile::TempDir,
    manifest: Manifest,
    contents: PackageContents,
}

impl Opened {
    fn unpack_into(package: &Path, parent: &Path) -> anyhow::Result<Self> {
        let folder = tempfile::Builder::new()
            .prefix(".install-")
            .tempdir_in(parent)
            .with_context(|| format!("making a folder in {}", parent.display()))?;
        let into = folder.path().join("package");
        unpack(package, &into)?;
        let manifest = Manifest::load(&into.join("manifest.toml"))
            .with_context(|| format!("{}: the package's manifest", package.display()))?;
        let contents = PackageContents::read(&into)?;
        Ok(Self {
            folder,
            manifest,
            contents,
        })
    }

    fn unpack(package: &Path) -> anyhow::Result<Self> {
        Self::unpack_into(package, &std::env::temp_dir())
    }

    fn path(&self) -> PathBuf {
        self.folder.path().join("package")
    }
}

fn load_config_if_present(path: &Path) -> anyhow::Result<Option<Config>> {
    if path.exists() {
        Ok(Some(Config::load(path)?))
    } else {
        Ok(None)
    }
}

/// What the configuration (if any) trusts for `channel`: the trusted keys,
/// the names that may sign its package (`None`: any), and whether an
/// unsigned package is admitted — the same settings the host loads by.
fn channel_trust(
    config: Option<&Config>,
    channel: &str,
) -> (TrustStore, Option<std::collections::BTreeSet<String>>, bool) {
    let Some(config) = config else {
        return (TrustStore::default(), None, false);
    };
    let trust = config.runtime_options().trust;
    let channel_config = config.channels.get(channel);
    let allowed = channel_config
        .and_then(|c| c.trusted_keys.as_ref())
        .map(|names| names.iter().cloned().collect());
    let allow_unsigned = channel_config
        .and_then(|c| c.allow_unsigned)
        .unwrap_or(trust.allow_unsigned);
    (trust.keys, allowed, allow_unsigned)
}

/// Verify `package` against the configuration, put it in place of the
/// channel's package folder (the old one is kept until the new one is in
/// place), and ask the running host to reload.
async fn install(
    config_path: &Path,
    config: &Config,
    package: &Path,
    admin_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&config.adapters_dir)
        .with_context(|| format!("making {}", config.adapters_dir.display()))?;
    let opened = Opened::unpack_into(package, &config.adapters_dir)?;
    let channel = opened.manifest.adapter.name.clone();
    let channel_config = config.channels.get(&channel);
    let (keys, allowed, allow_unsigned) = channel_trust(Some(config), &channel);
    let signer = match keys.admit(&opened.contents, &channel, allowed.as_ref(), allow_unsigned) {
        Ok(signer) => signer,
        Err(TrustError::Unsigned { .. }) => bail!(
            "{}: refused: unsigned, and `{}` does not allow unsigned packages for channel `{channel}`",
            package.display(),
            config_path.display()
        ),
        Err(error) => bail!("{}: refused: {error}", package.display()),
    };
    let signer = match signer {
        Some((key, _)) => format!("signed by `{key}`"),
        None => "unsigned (allowed by the configuration)".to_owned(),
    };
    let folder_name = channel_config
        .and_then(|c| c.package.clone())
        .unwrap_or_else(|| PathBuf::from(&channel));
    let destination = config.adapters_dir.join(&folder_name);
    let previous = opened.folder.path().join("previous");
    if destination.exists() {
        std::fs::rename(&destination, &previous)
            .with_context(|| format!("moving {} aside", destination.display()))?;
    }
    if let Err(error) = std::fs::rename(opened.path(), &destination) {
        if previous.exists() {
            let _ = std::fs::rename(&previous, &destination);
        }
        return Err(error).with_context(|| format!("installing into {}", destination.display()));
    }
    // Load it once here, as the host would: a package the host cannot load
    // is refused before a running host sees it (the previous version is put
    // back), and its native code lands in the compiled-component cache, so
    // the running host's reload swaps it in without compiling.
    let compiled = std::time::Instant::now();
    if let Err(error) = precompile(config_path, config, &destination).await {
        let refused = opened.folder.path().join("refused");
        let _ = std::fs::rename(&destination, &refused);
        if previous.exists() {
            let _ = std::fs::rename(&previous, &destination);
        }
        bail!(
            "{}: refused: the host cannot load it: {error:#}",
            package.display()
        );
    }
    let compiled = compiled.elapsed();
    println!(
        "installed `{channel}` v{} ({}, digest {}) into {}",
        opened.manifest.adapter.version,
        signer,
        opened.contents.digest,
        destination.display()
    );
    println!(
        "checked and compiled in {} ms (cached in {} for the running host)",
        compiled.as_millis(),
        config.cache_dir.display()
    );
    let Some(admin_url) = admin_url else {
        return Ok(ExitCode::SUCCESS);
    };
    match reload_running_host(config, admin_url).await {
        Ok(summary) => {
            println!("the running host reloaded: {summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("no running host reloaded it ({error:#}); it loads at the next start");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Load the package installed at `destination` into a runtime configured
/// like the host's (which compiles it into the configured cache).
async fn precompile(config_path: &Path, config: &Config, destination: &Path) -> anyhow::Result<()> {
    let runtime = switchboard_runtime::AdapterRuntime::new(
        config.runtime_options(),
        config.grants(config_path)?,
    )?;
    runtime
        .load_package(&destination.join("manifest.toml"))
        .await?;
    Ok(())
}

/// `POST /api/adapters/reload` on the running host's admin API, with the
/// configuration's first admin token.
async fn reload_running_host(config: &Config, admin_url: &str) -> anyhow::Result<String> {
    let token = config
        .server
        .admin_tokens
        .first()
        .context("no `server.admin_tokens` to call the admin API with")?;
    let token = crate::config::resolve_secret(token)
        .map_err(|name| anyhow::anyhow!("environment variable `{name}` is not set"))?;
    let url = format!("{}/api/adapters/reload", admin_url.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .timeout(std::time::Duration::from_secs(60))
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("POST {url}: {status}: {body}");
    }
    Ok(body)
}
