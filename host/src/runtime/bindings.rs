//! Host-side bindings generated from the contract in `wit/1.0.0/channel.wit`.

wasmtime::component::bindgen!({
    path: "../wit/1.0.0",
    world: "channel-adapter",
    imports: { default: async },
    exports: { default: async },
});

pub use self::switchboard::channel::types;
pub use self::exports::switchboard::channel::adapter as adapter_exports;
