//! The two pooled HTTP clients adapters' requests leave through. Neither
//! follows redirects (the adapter sees the 3xx and any follow-up request is
//! checked again) and neither uses a proxy from the environment
//! (`HTTPS_PROXY` would carry requests past the address filter).

use std::net::SocketAddr;
use std::sync::Arc;

use super::blocklist::blocked_ip;

/// A DNS resolver that refuses names resolving to special-purpose
/// addresses, so that DNS cannot be used to reach inside networks.
#[derive(Debug, Clone, Default)]
pub struct FilteringResolver;

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| blocked_ip(addr.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("`{host}` resolves only to blocked addresses").into();
                return Err(refused);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
}

/// The client for requests to the hosts adapters name: names resolve
/// through [`FilteringResolver`].
pub fn public_client() -> Result<reqwest::Client, reqwest::Error> {
    builder().dns_resolver(Arc::new(FilteringResolver)).build()
}

/// The client for requests the operator pointed elsewhere with
/// `endpoints`: the operator chose the address, so it is not filtered.
pub fn operator_client() -> Result<reqwest::Client, reqwest::Error> {
    builder().build()
}
