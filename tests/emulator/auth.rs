//! Publish authentication as Azure accepts it: the key in `aeg-sas-key` (header or query
//! parameter), a SAS token in `aeg-sas-token` or `Authorization: SharedAccessSignature`, and
//! Azure's 401 for everything else.

use ordergrid::eventgrid::sas::{self, TopicKey};
use ordergrid_testing::receiver::Receiver;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use crate::harness::{
    PATIENCE, Setup, TestEmulator, event, eventually_async, expect_azure_error, file, sorted,
    topic, webhook,
};

async fn start() -> (Receiver, TestEmulator) {
    let receiver = Receiver::start().await;
    let emulator = Setup::new(file(vec![
        topic(
            "orders",
            vec![webhook("order-hook", &receiver.url("/orders"))],
        ),
        topic("billing", vec![]),
    ]))
    .start()
    .await;
    (receiver, emulator)
}

fn body(id: &str) -> String {
    json!([event(id, "NewOrder", json!({}))]).to_string()
}

/// A publish request without credentials.
fn bare(emulator: &TestEmulator, url: &str, id: &str) -> reqwest::RequestBuilder {
    emulator
        .client
        .post(url)
        .header("content-type", "application/json")
        .body(body(id))
}

fn token(emulator: &TestEmulator, key: &TopicKey, valid_for: Duration) -> String {
    sas::generate(
        &emulator.endpoint("orders"),
        OffsetDateTime::now_utc() + valid_for,
        key,
    )
}

#[tokio::test]
async fn the_key_and_sas_tokens_are_accepted_in_each_place_azure_takes_them() {
    let (receiver, emulator) = start().await;
    let url = emulator.publish_url("orders");
    let key = emulator.key("orders").clone();
    let token = token(&emulator, &key, Duration::hours(1));
    let requests = [
        (
            "key-header",
            bare(&emulator, &url, "key-header").header("aeg-sas-key", key.expose_secret()),
        ),
        (
            "key-query",
            bare(
                &emulator,
                &format!(
                    "{url}&aeg-sas-key={}",
                    percent_encoding::utf8_percent_encode(
                        key.expose_secret(),
                        percent_encoding::NON_ALPHANUMERIC
                    )
                ),
                "key-query",
            ),
        ),
        (
            "sas-token",
            bare(&emulator, &url, "sas-token").header("aeg-sas-token", token.as_str()),
        ),
        (
            "sas-authorization",
            bare(&emulator, &url, "sas-authorization")
                .header("authorization", format!("SharedAccessSignature {token}")),
        ),
    ];
    for (how, request) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "{how}: {}",
            response.text().await.unwrap()
        );
    }
    let expected = sorted(["key-header", "key-query", "sas-token", "sas-authorization"]);
    eventually_async("all four events", PATIENCE, async || {
        (receiver.delivered_ids("/orders") == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_second_key_is_accepted_too() {
    let (_receiver, emulator) = start().await;
    let key2 = emulator.keys[0].key2.clone();
    let response = bare(&emulator, &emulator.publish_url("orders"), "k2")
        .header("aeg-sas-key", key2.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = bare(&emulator, &emulator.publish_url("orders"), "k2-sas")
        .header("aeg-sas-token", token(&emulator, &key2, Duration::hours(1)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_key_is_refused_with_401_in_azures_error_shape() {
    let (receiver, emulator) = start().await;
    let response = bare(&emulator, &emulator.publish_url("orders"), "wrong")
        .header("aeg-sas-key", TopicKey::generate().expose_secret())
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 401, "Unauthorized").await;
    assert!(
        message.starts_with(&format!(
            "The request authorization key is not authorized for 127.0.0.1:{}.",
            emulator.port
        )),
        "{message}"
    );
    // The key itself is never echoed.
    assert!(!message.contains(emulator.key("orders").expose_secret()));
    assert!(receiver.notifications("/orders").is_empty());
}

#[tokio::test]
async fn another_topics_key_is_refused_with_401() {
    let (_receiver, emulator) = start().await;
    let response = bare(&emulator, &emulator.publish_url("orders"), "crossed")
        .header("aeg-sas-key", emulator.key("billing").expose_secret())
        .send()
        .await
        .unwrap();
    expect_azure_error(response, 401, "Unauthorized").await;
}

#[tokio::test]
async fn a_sas_token_signed_with_another_key_is_refused_with_401() {
    let (_receiver, emulator) = start().await;
    let forged = token(&emulator, &TopicKey::generate(), Duration::hours(1));
    let response = bare(&emulator, &emulator.publish_url("orders"), "forged")
        .header("aeg-sas-token", forged)
        .send()
        .await
        .unwrap();
    expect_azure_error(response, 401, "Unauthorized").await;
}

/// A token signed with this topic's key but naming another topic (or the same
/// topic on another port) is refused, as Azure scopes `r` to "the path for the Event Grid topic
/// to which you're sending events"; the same token for this endpoint passes.
#[tokio::test]
async fn a_sas_token_for_another_topic_or_endpoint_is_refused_with_401() {
    let (receiver, emulator) = start().await;
    let key = emulator.key("orders");
    let expires = OffsetDateTime::now_utc() + Duration::hours(1);
    let other_port = format!("http://127.0.0.1:{}/orders/api/events", emulator.port + 1);
    for resource in [
        emulator.endpoint("billing"),
        other_port,
        "https://orders.westus2-1.eventgrid.azure.net/api/events".to_owned(),
    ] {
        let response = bare(&emulator, &emulator.publish_url("orders"), "scoped")
            .header("aeg-sas-token", sas::generate(&resource, expires, key))
            .send()
            .await
            .unwrap();
        let message = expect_azure_error(response, 401, "Unauthorized").await;
        assert!(
            message.contains("not for this topic's endpoint"),
            "{resource}: {message}"
        );
    }
    let localhost = format!(
        "http://localhost:{}/orders/api/events?apiVersion=2018-01-01",
        emulator.port
    );
    let response = bare(&emulator, &emulator.publish_url("orders"), "scoped")
        .header("aeg-sas-token", sas::generate(&localhost, expires, key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    eventually_async("the one accepted event", PATIENCE, async || {
        (receiver.notifications("/orders").len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_expired_sas_token_is_refused_with_401() {
    let (_receiver, emulator) = start().await;
    let expired = token(&emulator, emulator.key("orders"), Duration::minutes(-1));
    for header in ["aeg-sas-token", "authorization"] {
        let value = if header == "authorization" {
            format!("SharedAccessSignature {expired}")
        } else {
            expired.clone()
        };
        let response = bare(&emulator, &emulator.publish_url("orders"), "late")
            .header(header, value)
            .send()
            .await
            .unwrap();
        let message = expect_azure_error(response, 401, "Unauthorized").await;
        assert!(
            message.to_lowercase().contains("expired"),
            "{header}: {message}"
        );
    }
}

#[tokio::test]
async fn a_publish_without_credentials_is_refused_with_401() {
    let (_receiver, emulator) = start().await;
    let response = bare(&emulator, &emulator.publish_url("orders"), "anonymous")
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 401, "Unauthorized").await;
    assert!(
        message.contains("aeg-sas-key"),
        "the message says what to send: {message}"
    );
    // A bearer token cannot be checked locally; it is refused with a hint, not let through.
    let response = bare(&emulator, &emulator.publish_url("orders"), "bearer")
        .header("authorization", "Bearer eyJ0eXAiOiJKV1QifQ.e30.c2ln")
        .send()
        .await
        .unwrap();
    let message = expect_azure_error(response, 401, "Unauthorized").await;
    assert!(message.contains("Entra"), "{message}");
}
