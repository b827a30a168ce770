//! Client ID metadata documents: an HTTPS URL as `client_id` names a JSON document, at
//! that URL, describing the client (its name, redirect URIs, grants), so an agent needs
//! no registration step at all (the MCP authorization specification's preferred way).
//! On when `[oauth] client_id_metadata = true`.
//!
//! The URL comes from anyone, so fetching it is guarded: HTTPS only (plain http only on
//! a loopback host, and only with `metadata_private_addresses`); hosts limited to
//! `metadata_hosts` when set; every address the name resolves to must be public (no
//! loopback, private, link-local, unique-local, shared, multicast or reserved address,
//! unless `metadata_private_addresses`), checked in the resolver the connection uses, so a
//! second lookup cannot rebind it; no redirects; 5 s for the whole exchange; at most
//! 5 KiB; eight fetches at a time, and a ninth is refused at once rather than queued. A
//! document is kept 10 minutes, a failure 1 minute. At most 100 new clients an hour come
//! from documents (per node); documents already known keep working past that.
//!
//! The document must name itself (`client_id` equal to its URL), hold no secret, and
//! describe a public client (`token_endpoint_auth_method` `none`) allowed what a
//! self-registered client is (`registration::to_spec`). It becomes a client row with an
//! id derived from the URL (`md-` and 20 hex digits of its SHA-256: a URL is not a client
//! id Tollgate's tokens and channels can carry), updated when the document changes. An
//! operator who deletes such a client keeps it out: the id is never reused.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

pub use super::agents::DocumentPolicy;
use super::clients::{ClientDescriptions, ClientSpec};
use super::registration::{ClientMetadata, to_spec};

/// The largest document read (the draft's suggestion).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const KEEP_SECS: i64 = 600;
const KEEP_FAILURE_SECS: i64 = 60;
const MAX_CACHED: usize = 10_000;
/// New clients documents may create per node and hour: each is a row kept for good, and
/// anyone can name a new URL.
pub const NEW_CLIENTS_PER_HOUR: u32 = 100;

/// Whether an address is one anybody on the internet could reach.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || (a == 192 && b == 88 && c == 99) // 6to4 relays
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            let first = seg[0];
            let embedded_v4 = |hi: u16, lo: u16| {
                IpAddr::V4(std::net::Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            // 6to4 carries an IPv4 address that a relay may reach.
            if first == 0x2002 {
                return is_public(embedded_v4(seg[1], seg[2]));
            }
            !(v6.is_loopback()
                || seg[..6].iter().all(|s| *s == 0) // IPv4-compatible (deprecated)
                || (seg[..4].iter().all(|s| *s == 0) && seg[4] == 0xffff) // mapped
                || (seg[..4].iter().all(|s| *s == 0) && seg[4] == 0 && seg[5] == 0xffff) // SIIT
                || (first == 0x2001 && seg[1] == 0) // Teredo
                || (first == 0x2001 && (seg[1] == 2 || (0x10..0x30).contains(&seg[1]))) // benchmarking, ORCHID
                || (first & 0xffc0) == 0xfec0 // site local (deprecated)
                || (first == 0x0100 && seg[1..4].iter().all(|s| *s == 0)) // discard
                || (first & 0xfff0) == 0x3ff0 // documentation (RFC 9637)
                || first == 0x5f00 // segment routing
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)) // NAT64: may map inside
        }
    }
}

/// The resolver of the documents' connections: a name whose addresses are not all
/// public does not resolve (unless private addresses are allowed).
#[derive(Clone)]
struct PublicOnly {
    private_addresses: bool,
}

type Resolving =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let private_addresses = self.private_addresses;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(std::io::Error::other("the name has no address"));
            }
            if !private_addresses && addrs.iter().any(|a| !is_public(a.ip())) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the name resolves to a private address",
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

type Connector = hyper_rustls::HttpsConnector<HttpConnector<PublicOnly>>;

enum Kept {
    Spec(Box<ClientSpec>),
    Failed(String),
}

/// Fetches and checks documents, and remembers them a while.
pub struct Documents {
    client: Client<Connector, Empty<Bytes>>,
    policy: DocumentPolicy,
    cache: Mutex<HashMap<String, (Kept, i64)>>,
    fetching: tokio::sync::Semaphore,
    /// The scopes a document's client may hold beyond the standard ones.
    resource_scopes: Vec<String>,
    /// The hour's window and how many new clients documents made in it.
    created: Mutex<(i64, u32)>,
}

impl ClientDescriptions for Documents {
    fn describe<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<ClientSpec, String>> + Send + 'a>> {
        Box::pin(self.spec(url))
    }

    fn client_id_for(&self, url: &str) -> String {
        Documents::client_id_for(url)
    }

    fn may_create(&self) -> bool {
        let now = crate::clock::now();
        let mut window = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if now - window.0 >= 3600 {
            *window = (now, 0);
        }
        window.1 += 1;
        window.1 <= NEW_CLIENTS_PER_HOUR
    }
}

impl Documents {
    pub fn new(policy: DocumentPolicy, resource_scopes: Vec<String>) -> Result<Documents, String> {
        let mut http = HttpConnector::new_with_resolver(PublicOnly {
            private_addresses: policy.private_addresses,
        });
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|e| format!("cannot set up TLS for metadata documents: {e}"))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Documents {
            client: Client::builder(TokioExecutor::new()).build(https),
            policy,
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Semaphore::new(8),
            resource_scopes,
            created: Mutex::new((0, 0)),
        })
    }

    /// The client id Tollgate gives the client a document URL names.
    pub fn client_id_for(url: &str) -> String {
        format!("md-{}", &crate::secret::digest_hex(url)[..20])
    }

    /// The client a document describes, as an operator would register it (with the
    /// derived id), or why it cannot be used.
    /// No queue: a slot now (eight at a time), or a refusal now, so slow hosts cannot make
    /// every other client's first sign-in wait behind them.
    pub async fn spec(&self, url: &str) -> Result<ClientSpec, String> {
        let now = crate::clock::now();
        if let Some((kept, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
        {
            let fresh = match kept {
                Kept::Spec(_) => now - at < KEEP_SECS,
                Kept::Failed(_) => now - at < KEEP_FAILURE_SECS,
            };
            if fresh {
                return match kept {
                    Kept::Spec(s) => Ok((**s).clone()),
                    Kept::Failed(why) => Err(why.clone()),
                };
            }
        }
        // Busy is no verdict on the document: it is not remembered.
        let turn = self
            .fetching
            .try_acquire()
            .map_err(|_| "too many metadata documents are being fetched; try again shortly")?;
        let result = self.fetch_spec(url).await;
        drop(turn);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        let kept = match &result {
            Ok(s) => Kept::Spec(Box::new(s.clone())),
            Err(why) => Kept::Failed(why.clone()),
        };
        cache.insert(url.to_string(), (kept, now));
        result
    }

    async fn fetch_spec(&self, url: &str) -> Result<ClientSpec, String> {
        self.check_url(url)?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, self.get(url))
            .await
            .map_err(|_| "the document did not arrive within 5 s".to_string())??;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| "the document is not JSON".to_string())?;
        if doc.get("client_id").and_then(|v| v.as_str()) != Some(url) {
            return Err("the document's client_id must be its own URL".into());
        }
        if doc.get("client_secret").is_some() || doc.get("client_secret_expires_at").is_some() {
            return Err("a client ID metadata document must not hold a secret".into());
        }
        match doc
            .get("token_endpoint_auth_method")
            .and_then(|v| v.as_str())
        {
            None | Some("none") => {}
            Some(_) => {
                return Err(
                    "only public clients (token_endpoint_auth_method \"none\") are supported"
                        .into(),
                );
            }
        }
        let mut metadata = ClientMetadata::parse(&body).map_err(|e| e.description)?;
        metadata.token_endpoint_auth_method = Some("none".into());
        if metadata.redirect_uris.is_empty() {
            return Err("the document names no redirect_uris".into());
        }
        if metadata.client_name.is_none() {
            metadata.client_name = url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string));
        }
        let mut spec = to_spec(metadata, &self.resource_scopes).map_err(|e| e.description)?;
        spec.id = Some(Self::client_id_for(url));
        Ok(spec)
    }

    /// The URL's shape and host, before any lookup.
    fn check_url(&self, raw: &str) -> Result<(), String> {
        let url = url::Url::parse(raw).map_err(|_| "the client_id is not a URL".to_string())?;
        if raw.len() > 2000
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.path() == "/"
        {
            return Err(
                "a client ID metadata URL must have a path, and no fragment or credentials".into(),
            );
        }
        let host = url.host().ok_or("the client_id URL has no host")?;
        let loopback = match &host {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(d) => *d == "localhost",
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback && self.policy.private_addresses => {}
            _ => return Err("a client ID metadata URL must be https".into()),
        }
        // Addresses written in the URL are never resolved: check them here.
        let literal = match host {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && !self.policy.private_addresses
            && !is_public(ip)
        {
            return Err("the client_id URL names a private address".into());
        }
        let name = url.host_str().unwrap_or_default();
        if !self.policy.hosts.is_empty() && !self.policy.hosts.iter().any(|h| h == name) {
            return Err(format!(
                "documents from '{name}' are not accepted here ([oauth] metadata_hosts)"
            ));
        }
        Ok(())
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let req = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::USER_AGENT, "tollgate")
            .body(Empty::<Bytes>::new())
            .map_err(|_| "the client_id is not a usable URL".to_string())?;
        let res = self.client.request(req).await.map_err(|e| {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>()
                    && io.kind() == std::io::ErrorKind::PermissionDenied
                {
                    return "the client_id URL's host resolves to a private address".to_string();
                }
                source = s.source();
            }
            "the document could not be fetched".to_string()
        })?;
        if res.status() != http::StatusCode::OK {
            return Err(format!(
                "the document answered {} (redirects are not followed)",
                res.status().as_u16()
            ));
        }
        let body = Limited::new(res.into_body(), MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|_| format!("the document is larger than {MAX_DOCUMENT_BYTES} bytes"))?;
        Ok(body.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_before_any_lookup() {
        let docs = Documents::new(DocumentPolicy::default(), vec![]).unwrap();
        for bad in [
            "http://agent.example/client.json",
            "https://agent.example/",
            "https://agent.example/c#x",
            "https://user:pw@agent.example/c",
            "https://127.0.0.1/client.json",
            "https://[::1]/client.json",
            "https://169.254.169.254/latest",
            "http://127.0.0.1:9/client.json",
        ] {
            assert!(docs.check_url(bad).is_err(), "{bad}");
        }
        assert!(docs.check_url("https://agent.example/client.json").is_ok());
        let listed = Documents::new(
            DocumentPolicy {
                hosts: vec!["agents.example".into()],
                private_addresses: false,
            },
            vec![],
        )
        .unwrap();
        assert!(
            listed
                .check_url("https://agent.example/client.json")
                .is_err()
        );
        assert!(
            listed
                .check_url("https://agents.example/client.json")
                .is_ok()
        );
        let local = Documents::new(
            DocumentPolicy {
                hosts: vec![],
                private_addresses: true,
            },
            vec![],
        )
        .unwrap();
        assert!(local.check_url("http://127.0.0.1:9/client.json").is_ok());
        assert!(local.check_url("http://agent.example/client.json").is_err());
        assert_eq!(Documents::client_id_for("https://a.example/c").len(), 23);
        assert!(crate::authz::valid_client_id(&Documents::client_id_for(
            "https://a.example/c"
        )));
    }

    #[tokio::test]
    async fn slow_hosts_cannot_queue_everyone_and_new_clients_have_a_budget() {
        let docs = Documents::new(
            DocumentPolicy {
                hosts: vec![],
                private_addresses: true,
            },
            vec![],
        )
        .unwrap();
        // Eight fetches hang on slow hosts: the ninth is refused at once, not queued.
        let held: Vec<_> = (0..8)
            .map(|_| docs.fetching.try_acquire().unwrap())
            .collect();
        let started = std::time::Instant::now();
        let err = docs.spec("http://127.0.0.1:9/next.json").await.unwrap_err();
        assert!(err.contains("too many"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(held);
        // Being busy is not remembered against the URL.
        let err = docs.spec("http://127.0.0.1:9/next.json").await.unwrap_err();
        assert!(!err.contains("too many"), "{err}");
        for _ in 0..NEW_CLIENTS_PER_HOUR {
            assert!(docs.may_create());
        }
        assert!(!docs.may_create(), "the hour's budget is spent");
    }
}
