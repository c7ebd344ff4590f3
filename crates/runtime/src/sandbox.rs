//! What an adapter instance can reach: the imports linked for every call.
//!
//! Adapters get `wasi:io`, clocks, random, stdio (captured), outgoing
//! `wasi:http` (checked by [`super::egress`]) and the contract's own imports.
//! The rest of WASI is linked too, so that components built with Rust's
//! standard library instantiate, but its entry points trap: no directory is
//! reachable, no environment variable readable, no socket creatable. The call
//! that tries fails with [`super::CallError::SandboxViolation`].

use switchboard_contract::ContractVersion;
use wasmtime::component::Linker;

use super::state::CallState;

/// Entry points that adapters may not use, by interface.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("wasi:filesystem/preopens@0.2.12", &["get-directories"]),
    (
        "wasi:cli/environment@0.2.12",
        &["get-environment", "get-arguments", "initial-cwd"],
    ),
    (
        "wasi:sockets/instance-network@0.2.12",
        &["instance-network"],
    ),
    ("wasi:sockets/ip-name-lookup@0.2.12", &["resolve-addresses"]),
    (
        "wasi:sockets/tcp-create-socket@0.2.12",
        &["create-tcp-socket"],
    ),
    (
        "wasi:sockets/udp-create-socket@0.2.12",
        &["create-udp-socket"],
    ),
];

/// Link everything an adapter of contract `version` may import into `linker`.
pub fn link(linker: &mut Linker<CallState>, version: ContractVersion) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    switchboard_contract::add_to_linker(linker, version)?;
    linker.allow_shadowing(true);
    for (interface, functions) in FORBIDDEN {
        let mut instance = linker.instance(interface)?;
        for function in *functions {
            let import = format!("{interface}#{function}");
            instance.func_new(function, move |mut store, _ty, _params, _results| {
                store.data_mut().violations.forbidden_import = Some(import.clone());
                wasmtime::bail!("sandbox: `{import}` is not available to adapters")
            })?;
        }
    }
    linker.allow_shadowing(false);
    Ok(())
}
