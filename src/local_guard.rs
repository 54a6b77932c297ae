//! What every server ordergrid runs on 127.0.0.1 refuses, because every web page a developer
//! opens can reach 127.0.0.1 (the emulator, the host stand-in, the handler, the Web PubSub
//! service):
//!
//! - **DNS rebinding**: a page on `evil.example` whose name is made to resolve to 127.0.0.1 talks
//!   to a local server as its own origin, so it may read answers too. Every request whose `Host`
//!   is not a loopback name (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`) or one named in
//!   [`ALLOWED_HOSTS`] is refused.
//! - **Cross-site requests that change something**: a page may send a "simple" request (a form
//!   post, or `fetch` with `text/plain`) to any address without asking (no CORS preflight),
//!   blind but with its effect. A request other than GET, HEAD or OPTIONS is refused when it comes
//!   from a page of another origin: its `Origin` is not the server's own (scheme `http`/`https`
//!   and the request's `Host`), or it is `null`, or, without `Origin`, `Sec-Fetch-Site` says
//!   `cross-site` or `same-site`. Browsers send `Origin` with every such request; the Azure SDKs,
//!   the Functions host, `curl` and the CLI send neither header, so they are unaffected.
//!
//! What stays open: reads (GET) from any page, which cannot see the answers of another origin
//! without CORS (never granted here), and the dashboard, which is its own origin. Requests that
//! need a key, a token or a JSON body were never simple requests; this guard is the floor under
//! them, and under those that need nothing (the key-less `/publish`, a handshake re-run).
//! Each refusal is answered 403 with `{"error": {"code", "message"}}` and logged as a warning.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::settings::{Reader, Setting};

pub const ALLOWED_HOSTS: Setting = Setting::new(
    "ORDERGRID_ALLOWED_HOSTS",
    "",
    "host names, besides loopback ones (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`), that the local servers answer to, comma-separated; any other `Host` is refused (DNS rebinding)",
);

/// The rules above, with the host names [`ALLOWED_HOSTS`] adds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalGuard {
    extra_hosts: Vec<String>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` is not a name this server answers to.
    Host(String),
    /// A state-changing request from a page of another origin (what it said: its `Origin` or
    /// `Sec-Fetch-Site`).
    CrossSite(String),
}

impl Refusal {
    fn code(&self) -> &'static str {
        match self {
            Refusal::Host(_) => "HostNotAllowed",
            Refusal::CrossSite(_) => "CrossSiteRequest",
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Host(host) => format!(
                "Host {host:?} is not a loopback name: a request through another name is refused (DNS rebinding); name it in {} to allow it",
                ALLOWED_HOSTS.name
            ),
            Refusal::CrossSite(from) => format!(
                "a request that changes something is refused from a page of another site ({from}): local servers take those from their own origin, the SDKs and the CLI only"
            ),
        }
    }
}

impl LocalGuard {
    pub fn read(r: &Reader) -> Self {
        Self {
            extra_hosts: r
                .raw(&ALLOWED_HOSTS)
                .unwrap_or_default()
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    /// Whether a request with `method` and `headers` may go on.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if let Some(host) = &host
            && !self.allows_host(host)
        {
            return Err(Refusal::Host(host.clone()));
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            let own = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .zip(host.as_deref())
                .is_some_and(|(authority, host)| authority.eq_ignore_ascii_case(host));
            return if own {
                Ok(())
            } else {
                Err(Refusal::CrossSite(format!("Origin {origin:?}")))
            };
        }
        match headers
            .get("sec-fetch-site")
            .map(|v| v.as_bytes().to_ascii_lowercase())
            .as_deref()
        {
            Some(b"cross-site" | b"same-site") => Err(Refusal::CrossSite(
                "Sec-Fetch-Site without an Origin".to_owned(),
            )),
            _ => Ok(()),
        }
    }

    /// `Host` (with or without a port) names this machine, or a name [`ALLOWED_HOSTS`] lists.
    fn allows_host(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        }
        .trim_end_matches('.')
        .to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name == "::1"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
            || self.extra_hosts.contains(&name)
    }
}

/// The guard as an axum middleware: `router.layer(from_fn_with_state(guard, local_guard::layer))`.
pub async fn layer(State(guard): State<LocalGuard>, request: Request, next: Next) -> Response {
    match guard.check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(
                method = %request.method(),
                path = %request.uri().path(),
                code = refusal.code(),
                "refused: {}",
                refusal.message()
            );
            (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": {
                    "code": refusal.code(),
                    "message": refusal.message(),
                }})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn loopback_names_are_answered_and_others_refused() {
        let guard = LocalGuard::default();
        for host in [
            "127.0.0.1:7080",
            "localhost:7080",
            "LOCALHOST",
            "orders.localhost:7443",
            "[::1]:7080",
            "127.1.2.3",
            "localhost.",
        ] {
            assert_eq!(
                guard.check(&Method::GET, &headers(&[("host", host)])),
                Ok(()),
                "{host}"
            );
        }
        for host in [
            "evil.example:7080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "0.0.0.0:7080",
            "192.168.1.2",
            "[::2]:7080",
        ] {
            assert_eq!(
                guard.check(&Method::GET, &headers(&[("host", host)])),
                Err(Refusal::Host(host.to_owned())),
                "{host}"
            );
        }
        let named = LocalGuard::read(&Reader::new(
            &[(ALLOWED_HOSTS.name.to_owned(), " Dev.Box , other".to_owned())].into(),
        ));
        assert_eq!(
            named.check(&Method::GET, &headers(&[("host", "dev.box:7080")])),
            Ok(())
        );
        // No Host at all (HTTP/1.0): not a browser.
        assert_eq!(
            LocalGuard::default().check(&Method::POST, &HeaderMap::new()),
            Ok(())
        );
    }

    #[test]
    fn changes_from_another_origin_are_refused_reads_and_own_origin_are_not() {
        let guard = LocalGuard::default();
        let host = ("host", "127.0.0.1:7080");
        let ok =
            |pairs: &[(&'static str, &str)], method: Method| guard.check(&method, &headers(pairs));
        assert_eq!(
            ok(&[host, ("origin", "http://127.0.0.1:7080")], Method::POST),
            Ok(())
        );
        assert_eq!(
            ok(
                &[host, ("origin", "https://127.0.0.1:7080")],
                Method::DELETE
            ),
            Ok(())
        );
        assert_eq!(
            ok(&[host, ("sec-fetch-site", "same-origin")], Method::POST),
            Ok(())
        );
        assert_eq!(
            ok(&[host, ("sec-fetch-site", "none")], Method::POST),
            Ok(())
        );
        assert_eq!(ok(&[host], Method::POST), Ok(()), "an SDK or the CLI");
        assert_eq!(
            ok(&[host, ("origin", "https://evil.example")], Method::GET),
            Ok(())
        );
        for (name, value) in [
            ("origin", "https://evil.example"),
            ("origin", "http://localhost:7071"),
            ("origin", "http://127.0.0.1:7081"),
            ("origin", "null"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                assert!(
                    matches!(
                        ok(&[host, (name, value)], method.clone()),
                        Err(Refusal::CrossSite(_))
                    ),
                    "{method} with {name}: {value}"
                );
            }
        }
    }
}
