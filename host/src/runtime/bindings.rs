//! Host-side bindings generated from the contract in `wit/1.0.0/channel.wit`.

wasmtime::component::bindgen!({
    path: "../wit/1.0.0",
    world: "channel-adapter",
    imports: { default: async },
    exports: { default: async },
});

pub use self::exports::switchboard::channel::adapter as adapter_exports;
pub use self::switchboard::channel::types;

impl types::Purpose {
    /// Every purpose, in the contract's order.
    pub const ALL: [types::Purpose; 4] = [
        types::Purpose::Marketing,
        types::Purpose::Utility,
        types::Purpose::Authentication,
        types::Purpose::Service,
    ];

    /// The purpose's name as written in campaigns, audiences and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            types::Purpose::Marketing => "marketing",
            types::Purpose::Utility => "utility",
            types::Purpose::Authentication => "authentication",
            types::Purpose::Service => "service",
        }
    }

    /// The purpose with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|purpose| purpose.as_str() == name)
    }
}
