//! The one wasmtime engine, its epoch ticker and the compiled-component cache.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::{RuntimeError, SandboxLimits};

/// How often the epoch advances: the granularity of CPU budgets.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Build the engine every adapter runs in: epoch interruption for CPU
/// budgets, no component-model concurrency (adapters are synchronous
/// guests; turning it off makes each call about three times cheaper), and
/// the pooling allocator.
///
/// Every call gets a fresh instance. Without a pool each one maps its
/// linear memory, tables and fiber stack and unmaps them when it ends, and
/// every unmap interrupts the other cores to flush their TLBs: most of a
/// single-message call's cost. The pool maps slots once and reuses them;
/// the first `KEEP_RESIDENT` bytes of a memory are wiped in place rather
/// than released, so a Rust adapter's heap is not faulted in again on the
/// next call. Where the kernel reports which pages a call wrote
/// (`PAGEMAP_SCAN`, Linux 6.7 and later) only those are wiped.
/// `limits.memory_bytes` bounds each memory slot, and the pool has
/// `limits.max_instances` slots: far above what the lanes, webhook gate
/// and triggers run at once by default (a few per channel).
pub fn new_engine(limits: &SandboxLimits) -> Result<Engine, RuntimeError> {
    const KEEP_RESIDENT: usize = 2 << 20;
    let instances = limits.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        // A component is a handful of core modules (the guest, the WASI
        // adapter, the shims that tie them together).
        .total_core_instances(instances.saturating_mul(8))
        // Each memory slot reserves 4 GiB of address space (no bounds
        // checks in the compiled code): one per instance keeps a runtime's
        // pool at 1 TiB of the 128 TiB a process has by default.
        .total_memories(instances)
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_memories_per_module(1)
        .max_tables_per_module(4)
        // An interpreter (the JavaScript adapter's engine) has a large
        // function table.
        .table_elements(200_000)
        .max_memory_size(limits.memory_bytes.next_multiple_of(1 << 16).max(1 << 16))
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .async_stack_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.concurrency_support(false);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
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
