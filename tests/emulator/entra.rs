//! Microsoft Entra ID locally. The emulator serves HTTPS with a development CA
//! it makes itself, accepts bearer tokens the way Azurite's `--oauth basic` does (form, audience,
//! expiry; not the signature), and hands them out from a managed-identity endpoint speaking App
//! Service's protocol, so the official Python SDK with azure-identity's
//! `ManagedIdentityCredential` publishes unchanged.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ordergrid::emulator::entra::EntraMode;
use ordergrid_testing::receiver::Receiver;
use serde_json::{Value, json};
use std::process::Command;

use crate::harness::*;

async fn start(mode: EntraMode) -> (Receiver, TestEmulator) {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![topic(
        "orders",
        vec![webhook("hook", &receiver.url("/orders"))],
    )]))
    .https()
    .entra(mode)
    .start()
    .await;
    (receiver, emulator)
}

/// A client that trusts the emulator's development CA only.
fn https_client(emulator: &TestEmulator) -> reqwest::Client {
    let (_, ca) = emulator.https.as_ref().expect("HTTPS is on");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn identity_token(emulator: &TestEmulator, resource: &str) -> String {
    let (endpoint, secret) = &emulator.identity;
    let answer: Value = emulator
        .client
        .get(format!(
            "{endpoint}?api-version=2019-08-01&resource={}",
            percent_encode(resource)
        ))
        .header("x-identity-header", secret)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["token_type"], "Bearer", "{answer}");
    assert!(
        answer["expires_on"].is_string(),
        "unix seconds as a string: {answer}"
    );
    answer["access_token"].as_str().unwrap().to_owned()
}

async fn publish_with_bearer(
    emulator: &TestEmulator,
    https: bool,
    token: &str,
) -> reqwest::Response {
    let base = if https {
        emulator.https.as_ref().unwrap().0.clone()
    } else {
        emulator.base.clone()
    };
    https_client(emulator)
        .post(format!("{base}/orders/api/events?api-version=2018-01-01"))
        .bearer_auth(token)
        .json(&json!([event("bearer-1", "NewOrder", json!({}))]))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_python_sdk_publishes_over_https_with_a_managed_identity_token() {
    let (receiver, emulator) = start(EntraMode::Local).await;
    let (https, ca) = emulator.https.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.json");
    std::fs::write(
        &events,
        json!([event(
            "sdk-entra-1",
            "NewOrder",
            json!({"orderValue": "9.99"})
        )])
        .to_string(),
    )
    .unwrap();
    let (identity_endpoint, identity_header) = &emulator.identity;
    let out = run({
        let mut c = Command::new(test_python());
        c.arg(repo_root().join("tests/support/eg_publish.py"))
            .arg("--endpoint")
            .arg(format!("{https}/orders/api/events"))
            .args(["--auth", "entra", "--schema", "eventgrid", "--events"])
            .arg(&events)
            .arg("--ca-file")
            .arg(&ca)
            .env("IDENTITY_ENDPOINT", identity_endpoint)
            .env("IDENTITY_HEADER", identity_header)
            .env_remove("AZURE_CLIENT_ID");
        c
    })
    .await;
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && verdict.contains(r#""ok": true"#),
        "{verdict}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let delivered = eventually_async("the SDK's event delivered", PATIENCE, async || {
        let ids = receiver.delivered_ids("/orders");
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    assert_eq!(delivered, ["sdk-entra-1"]);
}

#[tokio::test]
async fn bearer_tokens_are_checked_for_audience_and_expiry_and_only_over_https() {
    let (receiver, emulator) = start(EntraMode::Local).await;
    let token = identity_token(&emulator, "https://eventgrid.azure.net").await;
    assert_eq!(
        publish_with_bearer(&emulator, true, &token).await.status(),
        200
    );

    let storage = identity_token(&emulator, "https://storage.azure.com").await;
    let message = expect_azure_error(
        publish_with_bearer(&emulator, true, &storage).await,
        401,
        "Unauthorized",
    )
    .await;
    assert!(message.contains("audience"), "{message}");

    let expired_claims = json!({"aud": "https://eventgrid.azure.net", "exp": 1_000_000_000});
    let expired = format!(
        "{}.{}.sig",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(expired_claims.to_string())
    );
    let message = expect_azure_error(
        publish_with_bearer(&emulator, true, &expired).await,
        401,
        "Unauthorized",
    )
    .await;
    assert!(message.contains("expired"), "{message}");

    let message = expect_azure_error(
        publish_with_bearer(&emulator, true, "not-a-jwt").await,
        401,
        "Unauthorized",
    )
    .await;
    assert!(message.contains("not a JWT"), "{message}");

    // Over plain http a bearer token is refused, as every SDK refuses to send one there.
    let message = expect_azure_error(
        publish_with_bearer(&emulator, false, &token).await,
        401,
        "Unauthorized",
    )
    .await;
    assert!(message.contains("HTTPS only"), "{message}");

    assert_eq!(receiver.delivered_ids("/orders").len(), 1);
}

#[tokio::test]
async fn the_identity_endpoint_answers_only_with_its_secret_header() {
    let (_receiver, emulator) = start(EntraMode::Local).await;
    let (endpoint, secret) = &emulator.identity;
    let ask = |header: Option<&str>, version: &str| {
        let mut request = emulator.client.get(format!(
            "{endpoint}?api-version={version}&resource=https%3A%2F%2Feventgrid.azure.net"
        ));
        if let Some(header) = header {
            request = request.header("x-identity-header", header);
        }
        request.send()
    };
    assert_eq!(ask(None, "2019-08-01").await.unwrap().status(), 401);
    assert_eq!(
        ask(Some("guess"), "2019-08-01").await.unwrap().status(),
        401
    );
    assert_eq!(ask(Some(secret), "2017-09-01").await.unwrap().status(), 400);
    assert_eq!(ask(Some(secret), "2019-08-01").await.unwrap().status(), 200);
}

#[tokio::test]
async fn with_entra_off_bearer_tokens_are_refused() {
    let (_receiver, emulator) = start(EntraMode::Off).await;
    let token = identity_token(&emulator, "https://eventgrid.azure.net").await;
    let message = expect_azure_error(
        publish_with_bearer(&emulator, true, &token).await,
        401,
        "Unauthorized",
    )
    .await;
    assert!(
        message.contains("ORDERGRID_EMULATOR_ENTRA=off"),
        "{message}"
    );
}

#[tokio::test]
async fn keys_and_sas_tokens_work_over_https_too() {
    let (receiver, emulator) = start(EntraMode::Local).await;
    let (https, _) = emulator.https.clone().unwrap();
    let response = https_client(&emulator)
        .post(format!("{https}/orders/api/events?api-version=2018-01-01"))
        .header("aeg-sas-key", emulator.key("orders").expose_secret())
        .json(&json!([event("https-key", "NewOrder", json!({}))]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    eventually_async("the event delivered", PATIENCE, async || {
        (receiver.delivered_ids("/orders") == ["https-key"]).then_some(())
    })
    .await;
}
