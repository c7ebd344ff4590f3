//! The one wasmtime engine, its epoch ticker and the compiled-component cache.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use super::RuntimeError;

/// How often the epoch advances: the granularity of CPU budgets.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Build the engine every adapter runs in: epoch interruption for CPU
/// budgets, and no component-model concurrency (adapters are synchronous
/// guests; turning it off makes each call about three times cheaper).
pub fn new_engine() -> Result<Engine, RuntimeError> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.concurrency_support(false);
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// Advance the engine's epoch every [`EPOCH_TICK`] on a dedicated thread
/// (not a tokio task, so a busy executor cannot stall it). The thread ends
/// when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the epoch ticker; CPU budgets will not be enforced");
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Compile `bytes`, or load the native code compiled earlier for the same
/// component bytes and engine configuration from `cache_dir`. Loading a
/// cached artifact takes well under a millisecond against tens of
/// milliseconds to compile.
pub fn compile_cached(
    engine: &Engine,
    bytes: &[u8],
    digest: &str,
    cache_dir: Option<&Path>,
    source: &Path,
) -> Result<Component, RuntimeError> {
    let invalid = |reason: String| RuntimeError::InvalidComponent {
        path: source.to_owned(),
        reason,
    };
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes).map_err(|e| invalid(format!("{e:#}")));
    };
    let path = cache_path(engine, dir, digest);
    if path.exists() {
        // SAFETY: the cache directory is the host's own; artifacts in it are
        // written only by `serialize` below, keyed by the component's hash
        // and the engine's compatibility hash.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable cached component")
            }
        }
    }
    let component = Component::new(engine, bytes).map_err(|e| invalid(format!("{e:#}")))?;
    if let Err(error) = write_cache(dir, &path, &component) {
        tracing::warn!(path = %path.display(), %error, "could not cache compiled component");
    }
    Ok(component)
}

fn cache_path(engine: &Engine, dir: &Path, digest: &str) -> PathBuf {
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()))
}

fn write_cache(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The contract version an adapter wrote into its `switchboard:contract-version`
/// custom section, if any.
pub fn embedded_contract_version(bytes: &[u8]) -> Option<String> {
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::CustomSection(section)) = payload
            && section.name() == "switchboard:contract-version"
        {
            return Some(String::from_utf8_lossy(section.data()).into_owned());
        }
    }
    None
}
