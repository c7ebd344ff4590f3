//! Which URLs an adapter may request, and where each request really goes.
//!
//! Every URL is parsed with the WHATWG URL parser (the `url` crate), which
//! normalises the host the way HTTP clients do: numeric IPv4 forms
//! (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`) become dotted quads,
//! IPv6 literals are compressed, names are lowercased. The checks then run
//! on that normalised host, so the name checked is the name dialled:
//!
//! 1. the scheme is `https`;
//! 2. the URL carries no user name or password;
//! 3. the host is declared in the manifest's `[egress] hosts`, with the port
//!    (443 unless the entry says `host:port`); an IP-literal host only when
//!    the manifest declares that literal;
//! 4. the operator approved the host (`allow_hosts`; all declared hosts
//!    when omitted);
//! 5. an IP-literal destination is not special-purpose (see
//!    [`super::blocklist`]); names are checked when they resolve.
//!
//! An operator may point a declared host elsewhere (`endpoints`), e.g. at a
//! simulator on loopback for tests and demos; only that channel's requests
//! to that host are redirected.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use url::{Host, Url};

use super::blocklist::blocked_ip;

/// The port an `https` URL uses when it names none.
const HTTPS_PORT: u16 = 443;

/// A host as the checks compare it: lowercase, no trailing dot, IPv6 in
/// brackets, IPv4 as a dotted quad.
fn canonical_host(url: &Url) -> Option<(String, Option<IpAddr>)> {
    match url.host()? {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            (!name.is_empty()).then_some((name, None))
        }
        Host::Ipv4(ip) => Some((ip.to_string(), Some(IpAddr::V4(ip)))),
        Host::Ipv6(ip) => Some((format!("[{ip}]"), Some(IpAddr::V6(ip)))),
    }
}

/// A URL without its query, fragment or credentials: safe for errors and
/// logs (platforms put tokens in query strings, e.g. WeChat's
/// `access_token`).
pub fn redacted(url: &Url) -> String {
    let host = canonical_host(url).map_or_else(|| "?".to_owned(), |(host, _)| host);
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let query = if url.query().is_some() { "?…" } else { "" };
    format!("{}://{host}{port}{}{query}", url.scheme(), url.path())
}

/// Parse one manifest `[egress] hosts` entry (`name`, `name:port`, an IP
/// literal, `[v6]:port`) into its canonical host and port.
pub fn parse_declared_host(entry: &str) -> Result<(String, u16), String> {
    let bare = |why: &str| {
        format!(
            "`{entry}` {why}; write a host name like `api.example.com`, optionally with `:port`"
        )
    };
    if entry.is_empty()
        || entry.contains(['/', '@', '?', '#', '\\'])
        || entry.contains(char::is_whitespace)
    {
        return Err(bare("is not a bare host"));
    }
    let url = Url::parse(&format!("https://{entry}/"))
        .map_err(|e| bare(&format!("does not parse ({e})")))?;
    let (host, _) = canonical_host(&url).ok_or_else(|| bare("has no host"))?;
    Ok((host, url.port().unwrap_or(HTTPS_PORT)))
}

/// Where the operator points a declared host: an `http` or `https` base
/// URL (scheme, host, port and optionally a path prefix), checked when the
/// configuration loads. Returns the canonical host and the base.
pub fn parse_endpoint(host: &str, target: &str) -> Result<(String, Url), String> {
    let (host, _) = parse_declared_host(host)?;
    let base = Url::parse(target)
        .map_err(|e| format!("endpoint for `{host}`: `{target}` is not a URL ({e})"))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(format!(
            "endpoint for `{host}`: `{target}` must be an http or https URL"
        ));
    }
    if base.host().is_none() || !base.username().is_empty() || base.password().is_some() {
        return Err(format!(
            "endpoint for `{host}`: `{target}` needs a host and no credentials"
        ));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(format!(
            "endpoint for `{host}`: `{target}` must not have a query or fragment"
        ));
    }
    Ok((host, base))
}

/// Where a checked request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// To the URL the adapter asked for (normalised); its name is resolved
    /// through the filtering resolver.
    Direct(Url),
    /// To where the operator pointed the host (`endpoints`); not filtered,
    /// since the operator chose it.
    Operator(Url),
}

impl Destination {
    /// The URL to request.
    pub fn url(&self) -> &Url {
        match self {
            Destination::Direct(url) | Destination::Operator(url) => url,
        }
    }
}

/// What one adapter may reach.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Hosts from the manifest (canonical) and the ports each may use.
    pub declared: BTreeMap<String, BTreeSet<u16>>,
    /// Hosts the operator approved (canonical); `None` approves every
    /// declared host.
    pub operator_hosts: Option<BTreeSet<String>>,
    /// Declared hosts the operator points elsewhere, with the base URL.
    pub endpoints: BTreeMap<String, Url>,
    /// Longest the host waits for a connection or a reply, whatever the
    /// adapter asks.
    pub max_timeout: Duration,
}

impl EgressPolicy {
    /// A policy from the manifest's entries, the operator's `allow_hosts`
    /// and `endpoints`; errors name the entry.
    pub fn new(
        manifest_hosts: &[String],
        allow_hosts: Option<&[String]>,
        endpoints: &BTreeMap<String, String>,
        max_timeout: Duration,
    ) -> Result<Self, String> {
        let mut declared: BTreeMap<String, BTreeSet<u16>> = BTreeMap::new();
        for entry in manifest_hosts {
            let (host, port) =
                parse_declared_host(entry).map_err(|e| format!("`[egress] hosts`: {e}"))?;
            declared.entry(host).or_default().insert(port);
        }
        let operator_hosts = allow_hosts
            .map(|hosts| {
                hosts
                    .iter()
                    .map(|entry| parse_declared_host(entry).map(|(host, _)| host))
                    .collect::<Result<BTreeSet<_>, _>>()
            })
            .transpose()
            .map_err(|e| format!("`allow_hosts`: {e}"))?;
        let endpoints = endpoints
            .iter()
            .map(|(host, target)| parse_endpoint(host, target))
            .collect::<Result<BTreeMap<_, _>, _>>()
            .map_err(|e| format!("`endpoints`: {e}"))?;
        Ok(Self {
            declared,
            operator_hosts,
            endpoints,
            max_timeout,
        })
    }

    /// Decide whether a request to `uri` may leave and where it goes; the
    /// error says why not (without the query string).
    pub fn check(&self, uri: &str) -> Result<Destination, String> {
        let url = Url::parse(uri).map_err(|e| format!("the request URL does not parse ({e})"))?;
        // The URL as shown in a refusal is built only for one.
        let shown = || redacted(&url);
        if url.scheme() != "https" {
            let shown = shown();
            return Err(format!(
                "`{shown}`: only https is allowed (an operator points a host at a test server with `endpoints`)"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            let shown = shown();
            return Err(format!("`{shown}`: credentials in the URL are not allowed"));
        }
        let (host, ip) =
            canonical_host(&url).ok_or_else(|| format!("`{}` has no host", shown()))?;
        let port = url.port().unwrap_or(HTTPS_PORT);
        let Some(ports) = self.declared.get(&host) else {
            let what = if ip.is_some() {
                "the IP address"
            } else {
                "the host"
            };
            return Err(format!(
                "{what} `{host}` is not in the adapter's manifest allow-list [{}]",
                self.declared.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        if !ports.contains(&port) {
            let shown = shown();
            return Err(format!(
                "`{shown}`: port {port} of `{host}` is not declared (the manifest allows {})",
                ports
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if let Some(approved) = &self.operator_hosts
            && !approved.contains(&host)
        {
            return Err(format!(
                "`{host}` is declared by the adapter but not approved in the operator's `allow_hosts` [{}]",
                approved.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(base) = self.endpoints.get(&host) {
            return Ok(Destination::Operator(rebase(base, &url)));
        }
        if let Some(ip) = ip
            && let Some(reason) = blocked_ip(ip)
        {
            let shown = shown();
            return Err(format!("`{shown}`: address {ip} is {reason}"));
        }
        let mut direct = url;
        if let Some(Host::Domain(name)) = direct.host().map(|h| h.to_owned())
            && name.ends_with('.')
        {
            // The name checked is the name dialled: drop the trailing dot.
            let _ = direct.set_host(Some(name.trim_end_matches('.')));
        }
        Ok(Destination::Direct(direct))
    }
}

/// `url`'s path and query under `base`.
fn rebase(base: &Url, url: &Url) -> Url {
    let mut target = base.clone();
    let prefix = base.path().trim_end_matches('/');
    target.set_path(&format!("{prefix}{}", url.path()));
    target.set_query(url.query());
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: Option<&[&str]>, endpoints: &[(&str, &str)]) -> EgressPolicy {
        let allow: Option<Vec<String>> =
            allow.map(|hosts| hosts.iter().map(|h| (*h).to_owned()).collect());
        EgressPolicy::new(
            &[
                "graph.facebook.com".to_owned(),
                "api.example.com:8443".to_owned(),
                "157.240.1.1".to_owned(),
            ],
            allow.as_deref(),
            &endpoints
                .iter()
                .map(|(h, u)| ((*h).to_owned(), (*u).to_owned()))
                .collect(),
            Duration::from_secs(5),
        )
        .expect("a valid policy")
    }

    fn refused(policy: &EgressPolicy, uri: &str) -> String {
        match policy.check(uri) {
            Ok(destination) => panic!("{uri} was allowed: {destination:?}"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn declared_https_hosts_are_allowed_normalised() {
        let open = policy(None, &[]);
        assert_eq!(
            open.check("https://GRAPH.facebook.com./v21.0/1/messages")
                .unwrap(),
            Destination::Direct(Url::parse("https://graph.facebook.com/v21.0/1/messages").unwrap())
        );
        assert!(open.check("https://graph.facebook.com:443/").is_ok());
        assert!(open.check("https://api.example.com:8443/x").is_ok());
        assert!(
            open.check("https://157.240.1.1/").is_ok(),
            "a declared public literal"
        );
    }

    #[test]
    fn numeric_ipv4_forms_are_the_address_they_dial() {
        let open = policy(None, &[]);
        for uri in [
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://0x7f.1/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::1]/",
            "https://2852039166/latest/meta-data",
        ] {
            let reason = refused(&open, uri);
            assert!(reason.contains("IP address"), "{uri}: {reason}");
            assert!(
                reason.contains("not in the adapter's manifest"),
                "{uri}: {reason}"
            );
        }
    }

    #[test]
    fn a_declared_literal_in_a_special_range_is_still_refused() {
        let literal = EgressPolicy::new(
            &["169.254.169.254".to_owned(), "[::1]".to_owned()],
            None,
            &BTreeMap::new(),
            Duration::from_secs(1),
        )
        .unwrap();
        let reason = refused(&literal, "https://0xa9fea9fe/latest");
        assert!(
            reason.contains("169.254.169.254") && reason.contains("link-local"),
            "{reason}"
        );
        assert!(refused(&literal, "https://[0:0:0:0:0:0:0:1]/").contains("loopback"));
    }

    #[test]
    fn ports_must_be_declared() {
        let open = policy(None, &[]);
        let reason = refused(&open, "https://graph.facebook.com:8080/");
        assert!(
            reason.contains("port 8080") && reason.contains("443"),
            "{reason}"
        );
        assert!(refused(&open, "https://api.example.com/").contains("port 443"));
    }

    #[test]
    fn plain_http_and_credentials_are_refused() {
        let open = policy(None, &[]);
        assert!(refused(&open, "http://graph.facebook.com/").contains("only https"));
        assert!(refused(&open, "https://user:pw@graph.facebook.com/").contains("credentials"));
        assert!(refused(&open, "https://graph.facebook.com@evil.example/").contains("credentials"));
        assert!(refused(&open, "not a url").contains("does not parse"));
    }

    #[test]
    fn undeclared_and_unapproved_hosts_are_refused_by_name() {
        let reason = refused(&policy(None, &[]), "https://evil.example/steal");
        assert!(
            reason.contains("evil.example") && reason.contains("graph.facebook.com"),
            "{reason}"
        );
        let reason = refused(&policy(Some(&[]), &[]), "https://graph.facebook.com/");
        assert!(reason.contains("allow_hosts"), "{reason}");
        assert!(
            policy(Some(&["Graph.Facebook.com"]), &[])
                .check("https://graph.facebook.com/")
                .is_ok()
        );
    }

    #[test]
    fn errors_never_show_the_query_string() {
        let reason = refused(
            &policy(None, &[]),
            "https://evil.example/cgi-bin/token?access_token=SECRET",
        );
        assert!(!reason.contains("SECRET"), "{reason}");
        let reason = refused(
            &policy(None, &[]),
            "http://graph.facebook.com/x?access_token=SECRET",
        );
        assert!(
            !reason.contains("SECRET") && reason.contains("?…"),
            "{reason}"
        );
    }

    #[test]
    fn an_endpoint_redirects_only_its_host() {
        let pointed = policy(
            None,
            &[("graph.facebook.com", "http://127.0.0.1:9000/sim/")],
        );
        assert_eq!(
            pointed
                .check("https://graph.facebook.com/v21.0/1/messages?x=1")
                .unwrap(),
            Destination::Operator(
                Url::parse("http://127.0.0.1:9000/sim/v21.0/1/messages?x=1").unwrap()
            )
        );
        // Loopback itself stays closed to the adapter.
        assert!(refused(&pointed, "http://127.0.0.1:9000/v21.0/x").contains("only https"));
        assert!(
            refused(&pointed, "https://127.0.0.1:9000/").contains("not in the adapter's manifest")
        );
    }

    #[test]
    fn bad_entries_are_refused_when_the_policy_is_built() {
        let build = |hosts: &[&str], endpoints: &[(&str, &str)]| {
            EgressPolicy::new(
                &hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
                None,
                &endpoints
                    .iter()
                    .map(|(h, u)| ((*h).to_owned(), (*u).to_owned()))
                    .collect(),
                Duration::from_secs(1),
            )
        };
        assert!(
            build(&["https://api.example.com"], &[])
                .unwrap_err()
                .contains("bare host")
        );
        assert!(build(&["api.example.com/path"], &[]).is_err());
        assert!(build(&["user@api.example.com"], &[]).is_err());
        assert!(
            build(&["api.example.com"], &[("api.example.com", "ftp://x")])
                .unwrap_err()
                .contains("http or https")
        );
        assert!(
            build(
                &["api.example.com"],
                &[("api.example.com", "http://127.0.0.1:1/?q")]
            )
            .is_err()
        );
    }
}
