//! The admin listener's guard: every request needs one of the operator's
//! bearer tokens (compared in constant time) and a Host header naming this
//! host (an IP literal, `localhost`, or a name the operator listed), so a
//! web page whose DNS name was rebound to the admin address cannot use it.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who may call the admin API.
#[derive(Debug, Clone, Default)]
pub struct AdminAuth {
    /// SHA-256 of each accepted token (so comparisons take the same time
    /// whatever the lengths).
    token_digests: Vec<[u8; 32]>,
    /// Extra Host names accepted, lowercase.
    hosts: Vec<String>,
}

impl AdminAuth {
    /// Accept `tokens`, and Host headers naming IP literals, `localhost`
    /// or one of `hosts`.
    pub fn new(tokens: &[String], hosts: &[String]) -> Self {
        Self {
            token_digests: tokens
                .iter()
                .map(|t| Sha256::digest(t.as_bytes()).into())
                .collect(),
            hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    fn token_ok(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every token, so timing says nothing about which matched.
        self.token_digests
            .iter()
            .fold(subtle::Choice::from(0), |found, known| {
                found | known.ct_eq(&digest)
            })
            .into()
    }

    fn host_ok(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        name == "localhost"
            || name.parse::<std::net::IpAddr>().is_ok()
            || self.hosts.contains(&name)
    }
}

/// The name part of a Host header: `[::1]:8081` → `::1`, `a.b:80` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            name
        } else {
            host
        }
    })
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"switchboard-admin\""),
        );
    }
    response
}

/// Middleware: refuse requests without a valid token or Host.
pub async fn require_admin(
    State(auth): State<std::sync::Arc<AdminAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or_default();
    if !auth.host_ok(host) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this Host is not served by the admin API (add it to `server.admin_hosts`)",
        );
    }
    if auth.token_digests.is_empty() {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the admin API is closed: no `server.admin_tokens` are configured",
        );
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(token) if auth.token_ok(token) => next.run(request).await,
        Some(_) => refuse(StatusCode::UNAUTHORIZED, "the bearer token is not valid"),
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "the admin API needs `Authorization: Bearer <token>`",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let auth = AdminAuth::new(
            &["a-long-admin-token-1".into(), "second-token-0123456".into()],
            &[],
        );
        assert!(auth.token_ok("a-long-admin-token-1"));
        assert!(auth.token_ok("second-token-0123456"));
        assert!(!auth.token_ok("a-long-admin-token-"));
        assert!(!auth.token_ok(""));
        assert!(!AdminAuth::default().token_ok(""));
    }

    #[test]
    fn hosts_are_literals_localhost_or_listed() {
        let auth = AdminAuth::new(&[], &["Ops.Example.com".into()]);
        for ok in [
            "127.0.0.1:8081",
            "[::1]:8081",
            "localhost:8081",
            "LOCALHOST",
            "10.0.0.5",
            "ops.example.com:443",
        ] {
            assert!(auth.host_ok(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8081",
            "127.0.0.1.evil.example",
            "",
        ] {
            assert!(!auth.host_ok(bad), "{bad}");
        }
    }
}
