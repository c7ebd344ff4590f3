//! Bindings generated from the contract in `wit/1.2.0/channel.wit`.
//!
//! Adapter authors do not use this module directly: the [`crate::Adapter`]
//! trait and the [`crate::export_adapter!`] macro wrap it.

wit_bindgen::generate!({
    path: "../wit/1.2.0",
    world: "channel-adapter",
    pub_export_macro: true,
    export_macro_name: "__export_adapter_world",
    default_bindings_module: "::switchboard_sdk::bindings",
    runtime_path: "::switchboard_sdk::__wit_bindgen_rt",
});
