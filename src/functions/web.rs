//! web: `GET /api/web/{*path}` serves the order tracker (`tracker`), the operators' board
//! (`board`), their scripts and style, and the bundled `@azure/web-pubsub-client`
//! (`web-pubsub-client.js`, built by `web/build.sh`). Everything is compiled into the binary.
//!
//! Invariants:
//! - only the files listed in [`ASSETS`] are served, each with its content type; any other path
//!   is 404 (no file system access, so no path can escape);
//! - every answer carries a strict Content-Security-Policy (scripts and styles from this origin
//!   only, no inline code, connections to this origin and to the configured Web PubSub
//!   service's WebSocket origin only) and `X-Content-Type-Options: nosniff`;
//! - the pages use relative URLs only (`tracker.js`, `../negotiate`, `../orders/…/status`), so
//!   they work under any host and route prefix.

use super::Services;
use super::feed::HUB;
use super::http::HttpError;
use crate::invocation::http::{HttpRequestData, HttpResponseData};

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One file the function serves.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path under `/api/web/`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file served, by path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "tracker",
        content_type: HTML,
        body: include_str!("../../web/static/tracker.html"),
    },
    Asset {
        path: "board",
        content_type: HTML,
        body: include_str!("../../web/static/board.html"),
    },
    Asset {
        path: "tracker.js",
        content_type: JAVASCRIPT,
        body: include_str!("../../web/static/tracker.js"),
    },
    Asset {
        path: "board.js",
        content_type: JAVASCRIPT,
        body: include_str!("../../web/static/board.js"),
    },
    Asset {
        path: "feed.js",
        content_type: JAVASCRIPT,
        body: include_str!("../../web/static/feed.js"),
    },
    Asset {
        path: "style.css",
        content_type: CSS,
        body: include_str!("../../web/static/style.css"),
    },
    Asset {
        path: "web-pubsub-client.js",
        content_type: JAVASCRIPT,
        body: include_str!("../../web/dist/web-pubsub-client.js"),
    },
];

pub fn handle(services: &Services, req: &HttpRequestData) -> Result<HttpResponseData, HttpError> {
    let path = req.param("path").unwrap_or_default();
    let asset = ASSETS
        .iter()
        .find(|a| a.path == path)
        .ok_or_else(|| HttpError::NotFound {
            code: "PageNotFound",
            message: format!(
                "no page {path:?} here: open tracker (the order tracker) or board (the operators' board)"
            ),
        })?;
    Ok(HttpResponseData::new(200, asset.content_type, asset.body)
        .with_header("Content-Security-Policy", content_security_policy(services))
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header("Referrer-Policy", "no-referrer")
        // Embedded in the binary: a new deployment may change them, so revalidate.
        .with_header("Cache-Control", "no-cache"))
}

/// The policy: nothing but this origin's scripts, styles and images, and connections to this
/// origin (negotiate, orderStatus) and the feed's WebSocket endpoint.
pub fn content_security_policy(services: &Services) -> String {
    let websocket = services
        .client_tokens
        .as_ref()
        .map(|tokens| websocket_origin(&tokens.connection().client_base_url(HUB)))
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'{websocket}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `ws://127.0.0.1:7090` of `ws://127.0.0.1:7090/client/hubs/orders`.
fn websocket_origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("wss", url));
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_websocket_origin_is_scheme_host_and_port() {
        assert_eq!(
            websocket_origin("ws://127.0.0.1:7090/client/hubs/orders"),
            "ws://127.0.0.1:7090"
        );
        assert_eq!(
            websocket_origin("wss://shop.webpubsub.azure.com/client/hubs/orders"),
            "wss://shop.webpubsub.azure.com"
        );
    }

    #[test]
    fn no_page_sets_inner_html_or_runs_inline_code() {
        for asset in ASSETS.iter().filter(|a| a.path != "web-pubsub-client.js") {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                " style=\"",
                "<script>",
                "onclick=",
            ] {
                assert!(!asset.body.contains(banned), "{} uses {banned}", asset.path);
            }
        }
    }
}
