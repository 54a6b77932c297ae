//! Email through a real SMTP server (aiosmtpd, started here): STARTTLS and implicit TLS with
//! AUTH, and the failure classes that decide whether Event Grid retries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ordergrid::functions::HandlerSettings;
use ordergrid::functions::Services;
use ordergrid::store::{Collection, RecordKey};
use ordergrid_testing::smtp::SmtpSink;
use serde_json::{Value, json};

use crate::events::{accepted_order, envelope, order_accepted};
use crate::helpers::{TestApp, eml_files, serve};

/// App settings as `(name, value)` pairs.
type Settings = Vec<(&'static str, String)>;

const USER: &str = "ordergrid";
const PASSWORD: &str = "s3cret-test-password";

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn start_sink(dir: &Path, tls_mode: &str, cert: &Path, key: &Path) -> SmtpSink {
    SmtpSink::start_with(
        &dir.join("received"),
        0,
        &[
            "--tls-mode",
            tls_mode,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--user",
            USER,
            "--password",
            PASSWORD,
        ],
    )
}

/// The app built from settings, exactly as `ordergrid serve` builds it.
async fn app_with_smtp(dir: tempfile::TempDir, settings: &[(&str, String)]) -> TestApp {
    let mut env: HashMap<String, String> = settings
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    env.insert(
        "ORDERGRID_STORE_PATH".into(),
        dir.path().join("store").display().to_string(),
    );
    env.insert("ORDERGRID_EMAIL_TRANSPORT".into(), "smtp".into());
    env.insert(
        "ORDERGRID_EMAIL_FROM".into(),
        "Shop <orders@shop.example>".into(),
    );
    env.insert("FUNCTIONS_CUSTOMHANDLER_PORT".into(), "0".into());
    let settings = HandlerSettings::from_env(&env).unwrap();
    let services = Services::from_settings(&settings, ordergrid::trace::Tracer::off())
        .await
        .unwrap();
    let store = services.store.clone();
    serve(services, store, PathBuf::new(), dir).await
}

fn smtp_settings(
    sink: &SmtpSink,
    tls: &str,
    cert: Option<&Path>,
    password: &str,
) -> Vec<(&'static str, String)> {
    let mut settings = vec![
        ("ORDERGRID_SMTP_HOST", "127.0.0.1".to_owned()),
        ("ORDERGRID_SMTP_PORT", sink.port.to_string()),
        ("ORDERGRID_SMTP_TLS", tls.to_owned()),
        ("ORDERGRID_SMTP_USERNAME", USER.to_owned()),
        ("ORDERGRID_SMTP_PASSWORD", password.to_owned()),
        ("ORDERGRID_SMTP_TIMEOUT", "5s".to_owned()),
    ];
    if let Some(cert) = cert {
        settings.push(("ORDERGRID_SMTP_CA_CERT", cert.display().to_string()));
    }
    settings
}

fn order_for(order_id: &str, email: &str) -> Value {
    let mut order = accepted_order(order_id);
    order["customerEmail"] = json!(email);
    order["items"] = json!([{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unitPrice": "75.00"}]);
    order
}

async fn deliver(app: &TestApp, id: &str, order: Value) -> crate::helpers::Answer {
    app.invoke(
        "EmailNotifier",
        &envelope("EmailNotifier", order_accepted(id, order)),
    )
    .await
}

async fn ledger_state(app: &TestApp, order_id: &str) -> Option<String> {
    let key = RecordKey::new(Collection::EmailLedger, order_id).unwrap();
    let record = app.store.get(&key).await.unwrap()?;
    let entry: Value = serde_json::from_slice(&record.body).unwrap();
    Some(entry["state"].as_str().unwrap().to_owned())
}

async fn sends_through(tls_mode: &str, setting: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let sink = start_sink(dir.path(), tls_mode, &cert, &key);
    let app = app_with_smtp(
        tempfile::tempdir().unwrap(),
        &smtp_settings(&sink, setting, Some(&cert), PASSWORD),
    )
    .await;

    let answer = deliver(&app, "e1", order_for("S-1", "buyer@example.com")).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    let [message] = eml_files(&sink.maildir).try_into().unwrap();
    let raw = std::fs::read_to_string(&message).unwrap();
    for needle in [
        "To: buyer@example.com",
        "From: Shop <orders@shop.example>",
        "Subject: We received your order S-1",
        "Message-ID: <order-S-1.confirmation@shop.example>",
        "Content-Type: text/plain",
        "Content-Type: text/html",
        "Total:    150.00 USD",
        "2 x MUG-1 (Mug) at 75.00 USD = 150.00 USD",
    ] {
        assert!(raw.contains(needle), "{needle} missing from\n{raw}");
    }
    let envelope: Value =
        serde_json::from_str(&std::fs::read_to_string(message.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(envelope["auth_user"], USER, "{envelope}");
    assert_eq!(envelope["tls"], true, "{envelope}");
    assert_eq!(envelope["rcpt_tos"], json!(["buyer@example.com"]));
    assert_eq!(envelope["mail_from"], "orders@shop.example");
    assert_eq!(ledger_state(&app, "S-1").await.as_deref(), Some("sent"));

    // A duplicate delivery sends nothing more.
    assert_eq!(
        deliver(&app, "e1", order_for("S-1", "buyer@example.com"))
            .await
            .status,
        200
    );
    assert_eq!(eml_files(&sink.maildir).len(), 1);
}

#[tokio::test]
async fn starttls_with_auth_delivers_the_confirmation() {
    sends_through("starttls", "starttls").await;
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers_the_confirmation() {
    sends_through("implicit", "implicit").await;
}

#[tokio::test]
async fn a_rejected_recipient_is_permanent_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let sink = start_sink(dir.path(), "starttls", &cert, &key);
    let app = app_with_smtp(
        tempfile::tempdir().unwrap(),
        &smtp_settings(&sink, "starttls", Some(&cert), PASSWORD),
    )
    .await;
    let answer = deliver(&app, "e1", order_for("R-1", "reject-me@example.com")).await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert!(
        answer.log().contains("refused permanently") && answer.log().contains("550"),
        "{}",
        answer.log()
    );
    assert_eq!(ledger_state(&app, "R-1").await.as_deref(), Some("failed"));
    assert_eq!(
        deliver(&app, "e1", order_for("R-1", "reject-me@example.com"))
            .await
            .status,
        200
    );
    assert!(eml_files(&sink.maildir).is_empty());
}

#[tokio::test]
async fn transient_smtp_failures_fail_the_invocation_so_it_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let sink = start_sink(dir.path(), "starttls", &cert, &key);
    let untrusted_dir = tempfile::tempdir().unwrap();
    let (untrusted, _) = certificate(untrusted_dir.path());
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut refused = smtp_settings(&sink, "starttls", Some(&cert), PASSWORD);
    refused[1].1 = closed_port.to_string();

    let cases: Vec<(&str, Settings, &str, &str)> = vec![
        (
            "451 reply",
            smtp_settings(&sink, "starttls", Some(&cert), PASSWORD),
            "tempfail@example.com",
            "451",
        ),
        (
            "connection refused",
            refused,
            "buyer@example.com",
            "Connection refused",
        ),
        (
            "wrong password",
            smtp_settings(&sink, "starttls", Some(&cert), "wrong"),
            "buyer@example.com",
            "authentication failed",
        ),
        (
            "untrusted certificate",
            smtp_settings(&sink, "starttls", Some(&untrusted), PASSWORD),
            "buyer@example.com",
            "SMTP delivery failed",
        ),
    ];
    for (i, (name, settings, to, expected)) in cases.into_iter().enumerate() {
        let app = app_with_smtp(tempfile::tempdir().unwrap(), &settings).await;
        let order_id = format!("T-{i}");
        let answer = deliver(&app, "e1", order_for(&order_id, to)).await;
        assert_eq!(answer.status, 503, "{name}: {}", answer.json);
        let message = answer.error_message();
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            !message.contains(PASSWORD),
            "{name}: the password must never appear"
        );
        assert_eq!(
            ledger_state(&app, &order_id).await,
            None,
            "{name}: the claim is released for the retry"
        );
    }
    assert!(eml_files(&sink.maildir).is_empty());
}
