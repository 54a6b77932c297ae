//! web: the tracker, the board, their scripts and the bundled client, each with its content
//! type, a strict Content-Security-Policy and nosniff; anything else 404.

use std::collections::BTreeSet;

use ordergrid::functions::Operators;
use ordergrid::invocation::http::HttpResponseData;
use serde_json::json;

use crate::events::http_envelope;
use crate::helpers::{TestApp, body_json, repo_root, spawn_feed_app};

async fn get(app: &TestApp, path: &str) -> HttpResponseData {
    let url = format!("http://localhost:7071/api/web/{path}");
    app.invoke(
        "web",
        &http_envelope("web", &url, json!({}), json!({}), json!({"path": path})),
    )
    .await
    .res()
}

const PAGES: [(&str, &str); 7] = [
    ("tracker", "text/html; charset=utf-8"),
    ("board", "text/html; charset=utf-8"),
    ("tracker.js", "text/javascript; charset=utf-8"),
    ("board.js", "text/javascript; charset=utf-8"),
    ("feed.js", "text/javascript; charset=utf-8"),
    ("style.css", "text/css; charset=utf-8"),
    ("web-pubsub-client.js", "text/javascript; charset=utf-8"),
];

#[tokio::test]
async fn every_page_and_script_is_served_with_its_type_a_strict_policy_and_nosniff() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    for (path, content_type) in PAGES {
        let res = get(&app, path).await;
        assert_eq!(res.status_code, 200, "{path}");
        assert_eq!(res.header("Content-Type"), Some(content_type), "{path}");
        assert_eq!(
            res.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{path}"
        );
        let csp = res.header("Content-Security-Policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            // negotiate and orderStatus on this origin, the feed on the configured service.
            "connect-src 'self' ws://127.0.0.1:7090",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: {directive} missing from {csp}"
            );
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert!(!res.body.is_empty());
    }
}

#[tokio::test]
async fn the_pages_carry_the_hooks_people_and_browser_tests_use() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let tracker = get(&app, "tracker").await.body;
    for hook in [
        "id=\"connection\"",
        "id=\"order-form\"",
        "id=\"order-id\"",
        "id=\"status\"",
        "data-status=\"unknown\"",
        "id=\"timeline\"",
        "id=\"reasons\"",
        "id=\"error\"",
        "<script type=\"module\" src=\"tracker.js\"></script>",
    ] {
        assert!(tracker.contains(hook), "tracker lacks {hook}");
    }
    let board = get(&app, "board").await.body;
    for hook in [
        "id=\"connection\"",
        "id=\"order-rows\"",
        "data-count=\"received\"",
        "data-count=\"accepted\"",
        "data-count=\"rejected\"",
        "data-count=\"confirmationSent\"",
        "data-count=\"confirmationFailed\"",
        "<script type=\"module\" src=\"board.js\"></script>",
    ] {
        assert!(board.contains(hook), "board lacks {hook}");
    }
    let feed = get(&app, "feed.js").await.body;
    assert!(feed.contains("from \"./web-pubsub-client.js\""));
    assert!(
        feed.contains("getClientAccessUrl"),
        "renegotiates on reconnect"
    );
    assert!(
        feed.contains("`../negotiate?${query}`"),
        "a relative URL: any origin, any prefix"
    );
    assert!(feed.contains("../orders/${encodeURIComponent(orderId)}/status"));
}

/// Every file a page or script refers to (`src=`, `href=`, `import … from "./…"`) is served.
#[tokio::test]
async fn every_file_the_pages_refer_to_is_served() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let mut referred = BTreeSet::new();
    for (path, _) in PAGES.iter().filter(|(p, _)| *p != "web-pubsub-client.js") {
        let body = get(&app, path).await.body;
        for marker in ["src=\"", "href=\"", "from \"./"] {
            for rest in body.split(marker).skip(1) {
                let target = rest.split(['"', '?']).next().unwrap();
                referred.insert(target.to_owned());
            }
        }
    }
    assert!(
        referred.contains("web-pubsub-client.js") && referred.contains("style.css"),
        "{referred:?}"
    );
    for target in referred {
        let res = get(&app, &target).await;
        assert_eq!(
            res.status_code, 200,
            "{target} is referred to but not served"
        );
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_never_reach_the_file_system() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    for path in [
        "",
        "index.html",
        "Tracker",
        "../Cargo.toml",
        "static/tracker.html",
        "dist/web-pubsub-client.js",
        "tracker/",
    ] {
        let res = get(&app, path).await;
        assert_eq!(res.status_code, 404, "{path:?}");
        assert_eq!(res.header("X-Content-Type-Options"), Some("nosniff"));
        let body = body_json(&res);
        assert_eq!(body["error"]["code"], "PageNotFound");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("tracker"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_served_client_is_the_committed_bundle() {
    let (app, _) = spawn_feed_app(Operators::Anyone).await;
    let served = get(&app, "web-pubsub-client.js").await.body;
    let committed =
        std::fs::read_to_string(repo_root().join("web/dist/web-pubsub-client.js")).unwrap();
    assert_eq!(served, committed);
    assert!(
        served.contains("export{") && served.contains("as WebPubSubClient}"),
        "an ES module exporting the client"
    );
}

/// `web/build.sh --check` rebuilds the bundle from the pinned packages and compares. It needs
/// npm and the npm registry, which `scripts/test-env` needs for the SDK tests anyway.
#[test]
fn the_committed_bundle_is_what_build_sh_produces() {
    let out = std::process::Command::new("sh")
        .arg(repo_root().join("web/build.sh"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "web/build.sh --check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn without_web_pubsub_the_pages_may_connect_to_their_own_origin_only() {
    let app = crate::helpers::spawn_app_where(
        std::sync::Arc::new(ordergrid::store::MemoryStore::new()),
        std::sync::Arc::new(ordergrid::email::MemoryTransport::new()),
        |_| {},
    )
    .await;
    let res = get(&app, "tracker").await;
    assert_eq!(res.status_code, 200);
    let csp = res.header("Content-Security-Policy").unwrap();
    assert!(csp.contains("connect-src 'self';"), "{csp}");
}
