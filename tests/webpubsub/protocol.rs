//! The client endpoint: token checks before the upgrade, the JSON subprotocols' answers, a
//! reliable client's recovery, and bad input closing only its own connection.

use ordergrid::webpubsub::actions::{Action, DataType, Message as ActionMessage};
use ordergrid::webpubsub::token::{self, AccessKey, OneOrMany};
use serde_json::json;

use super::{HUB, Received, Service, groups};

const RELIABLE: &str = "json.reliable.webpubsub.azure.v1";
const JSON: &str = "json.webpubsub.azure.v1";

fn to_group(group: &str, data: serde_json::Value) -> Action {
    Action::SendToGroup {
        group: group.into(),
        message: ActionMessage {
            data: data.to_string().into_bytes(),
            data_type: DataType::Json,
        },
        excluded: vec![],
    }
}

/// Tokens are refused with 401 before any upgrade, as the service refuses them: another key,
/// expired (beyond five minutes of skew), another hub's or another host's audience, none.
#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let s = Service::start().await;
    let other_key = token::sign(
        &token::Claims::new(
            &format!("{}/client/hubs/{HUB}", s.base),
            token::now_seconds(),
            60,
        ),
        &AccessKey::new("another-key-another-key-another-key-00"),
    );
    let expired = s.token(|c| c.exp = token::now_seconds() - 301);
    let other_hub = s.token(|c| c.aud = OneOrMany::One(format!("{}/client/hubs/other", s.base)));
    let localhost = s.token(|c| {
        c.aud = OneOrMany::One(format!(
            "{}/client/hubs/{HUB}",
            s.base.replace("127.0.0.1", "localhost")
        ))
    });
    for (what, token) in [
        ("another key", other_key),
        ("expired", expired),
        ("another hub", other_hub),
        (
            "another host (a token for localhost used on 127.0.0.1)",
            localhost,
        ),
        ("garbage", "a.b.c".to_owned()),
    ] {
        let refused = s.connect(&token, JSON).await.err();
        assert_eq!(
            refused.as_ref().map(|r| r.0),
            Some(401),
            "{what}: {refused:?}"
        );
    }
    let none = s.connect_url(&s.client_url(), JSON).await.err();
    assert_eq!(none.map(|r| r.0), Some(401));
    let bad_hub = s
        .connect_url(
            &format!("{}/client/hubs/1bad", s.base.replace("http", "ws")),
            JSON,
        )
        .await
        .err();
    assert_eq!(bad_hub.map(|r| r.0), Some(400));
    // Within the skew it is still good, and `Authorization: Bearer` works as well as the query.
    let skewed = s.token(|c| c.exp = token::now_seconds() - 200);
    s.connect(&skewed, JSON).await.unwrap().connected().await;
}

/// The JSON subprotocol as documented: `connected` with the user and connection id, joins the
/// token's groups, `pong`, acks (Forbidden without the role, Duplicate for a repeated ack id),
/// a client's group message with its `fromUserId`, and `noEcho`.
#[tokio::test]
async fn the_json_subprotocol_answers_as_documented() {
    let s = Service::start().await;
    let mut reader = s
        .connect(
            &s.token(|c| {
                c.sub = Some("ann".into());
                c.groups = groups(&["order-7"]);
            }),
            JSON,
        )
        .await
        .unwrap();
    let connected = reader.connected().await;
    assert_eq!(connected["userId"], "ann");
    assert!(
        connected["connectionId"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    assert!(
        connected.get("reconnectionToken").is_none(),
        "only reliable clients get one"
    );

    s.client()
        .apply(HUB, &to_group("order-7", json!({"status": "accepted"})))
        .await
        .unwrap();
    // A REST send to a group arrives as a group message with no sender.
    let message = reader.json().await;
    assert_eq!(
        message,
        json!({"type": "message", "from": "group", "group": "order-7", "fromUserId": null, "dataType": "json", "data": {"status": "accepted"}})
    );

    reader.send_json(json!({"type": "ping"})).await;
    assert_eq!(reader.json().await, json!({"type": "pong"}));
    reader
        .send_json(json!({"type": "joinGroup", "group": "operators", "ackId": 1}))
        .await;
    let refused = reader.json().await;
    assert_eq!(refused["success"], false);
    assert_eq!(refused["error"]["name"], "Forbidden");
    reader
        .send_json(json!({"type": "joinGroup", "group": "operators", "ackId": 1}))
        .await;
    assert_eq!(reader.json().await["error"]["name"], "Duplicate");

    let mut writer = s
        .connect(
            &s.token(|c| {
                c.sub = Some("op".into());
                c.role = OneOrMany::of(vec![
                    "webpubsub.sendToGroup.order-7".into(),
                    "webpubsub.joinLeaveGroup".into(),
                ]);
            }),
            JSON,
        )
        .await
        .unwrap();
    writer.connected().await;
    writer
        .send_json(json!({"type": "joinGroup", "group": "order-7", "ackId": 1}))
        .await;
    assert_eq!(
        writer.json().await,
        json!({"type": "ack", "ackId": 1, "success": true})
    );
    writer.send_json(json!({"type": "sendToGroup", "group": "order-7", "ackId": 2, "noEcho": true, "dataType": "text", "data": "hello"})).await;
    assert_eq!(writer.json().await["success"], true);
    let from_group = reader.json().await;
    assert_eq!(
        from_group,
        json!({"type": "message", "from": "group", "group": "order-7", "fromUserId": "op", "dataType": "text", "data": "hello"})
    );
    writer
        .send_json(json!({"type": "sendToGroup", "group": "order-8", "ackId": 3, "data": {}}))
        .await;
    assert_eq!(writer.json().await["error"]["name"], "Forbidden");
    // noEcho: the writer got nothing but its acks; the next thing it sees is the pong.
    writer.send_json(json!({"type": "ping"})).await;
    assert_eq!(writer.json().await, json!({"type": "pong"}));
}

/// A reliable client numbers from 1, acknowledges, loses its connection, and reconnects with
/// its connection id and reconnection token: it gets `connected` again and every message it had
/// not acknowledged, in order, including those sent while it was away. A wrong token is closed
/// with 1008, which tells the official client the session is gone.
#[tokio::test]
async fn a_reliable_client_gets_what_it_missed_after_a_dropped_connection() {
    let s = Service::start().await;
    let token = s.token(|c| c.groups = groups(&["order-1"]));
    let mut first = s.connect(&token, RELIABLE).await.unwrap();
    let connected = first.connected().await;
    let id = connected["connectionId"].as_str().unwrap().to_owned();
    let reconnection = connected["reconnectionToken"].as_str().unwrap().to_owned();
    let send = async |n: u32| {
        s.client()
            .apply(HUB, &to_group("order-1", json!({"n": n})))
            .await
            .unwrap()
    };
    send(1).await;
    send(2).await;
    let one = first.json().await;
    assert_eq!(
        (one["sequenceId"].as_u64(), &one["data"]),
        (Some(1), &json!({"n": 1}))
    );
    assert_eq!(first.json().await["sequenceId"], 2);
    first
        .send_json(json!({"type": "sequenceAck", "sequenceId": 1}))
        .await;
    first.send_json(json!({"type": "ping"})).await;
    assert_eq!(
        first.json().await,
        json!({"type": "pong"}),
        "the ack was read before the ping"
    );
    // The network drops: no close frame.
    drop(first);
    send(3).await;

    let wrong = format!(
        "{}?awps_connection_id={id}&awps_reconnection_token=nope",
        s.client_url()
    );
    let (_, code) = s
        .connect_url(&wrong, RELIABLE)
        .await
        .unwrap()
        .closed()
        .await;
    assert_eq!(code, Some(1008));

    let recover = format!(
        "{}?awps_connection_id={id}&awps_reconnection_token={reconnection}",
        s.client_url()
    );
    let mut second = s.connect_url(&recover, RELIABLE).await.unwrap();
    let again = second.connected().await;
    assert_eq!(again["connectionId"], id.as_str());
    let replayed: Vec<u64> = [second.json().await, second.json().await]
        .iter()
        .map(|m| m["sequenceId"].as_u64().unwrap())
        .collect();
    assert_eq!(replayed, [2, 3]);
    send(4).await;
    assert_eq!(second.json().await["sequenceId"], 4);
}

/// A session that is not recovered within the recovery window is gone: its groups are left and
/// a late reconnect is closed with 1008.
#[tokio::test]
async fn a_session_not_recovered_in_time_is_gone() {
    let s = Service::start_with(|settings| {
        settings.recovery_window = std::time::Duration::from_millis(50)
    })
    .await;
    let mut ws = s
        .connect(&s.token(|c| c.groups = groups(&["g"])), RELIABLE)
        .await
        .unwrap();
    let connected = ws.connected().await;
    drop(ws);
    let url = format!(
        "{}?awps_connection_id={}&awps_reconnection_token={}",
        s.client_url(),
        connected["connectionId"].as_str().unwrap(),
        connected["reconnectionToken"].as_str().unwrap()
    );
    let exists = format!(
        "/api/hubs/{HUB}/connections/{}",
        connected["connectionId"].as_str().unwrap()
    );
    ordergrid_testing::eventually_async("the session to expire", super::PATIENCE, async || {
        let token = token::sign(
            &token::Claims::new(&format!("{}{exists}", s.base), token::now_seconds(), 60),
            &s.key,
        );
        let status = reqwest::Client::new()
            .head(format!("{}{exists}", s.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status();
        (status == 404).then_some(())
    })
    .await;
    let (_, code) = s.connect_url(&url, RELIABLE).await.unwrap().closed().await;
    assert_eq!(code, Some(1008));
}

/// Bad input closes the connection that sent it, with the reason, and nothing else: a frame
/// that is not a request, binary on a JSON subprotocol, a message over 1 MB.
#[tokio::test]
async fn bad_frames_close_only_their_own_connection() {
    let s = Service::start().await;
    let token = s.token(|c| c.groups = groups(&["g"]));
    let mut bystander = s.connect(&token, JSON).await.unwrap();
    bystander.connected().await;
    for bad in [
        tokio_tungstenite::tungstenite::Message::text("not json"),
        tokio_tungstenite::tungstenite::Message::text(r#"{"type":"teleport"}"#),
        tokio_tungstenite::tungstenite::Message::binary(vec![1, 2, 3]),
        tokio_tungstenite::tungstenite::Message::text(format!(
            r#"{{"type":"event","event":"e","data":"{}"}}"#,
            "x".repeat(1024 * 1024 + 1)
        )),
    ] {
        let mut ws = s.connect(&token, JSON).await.unwrap();
        ws.connected().await;
        use futures::SinkExt as _;
        let _ = ws.ws.send(bad).await;
        let (before, code) = ws.closed().await;
        assert!(matches!(code, Some(1003 | 1008 | 1009)), "{code:?}");
        if let Some(Received::Json(frame)) = before.last() {
            assert_eq!(frame["event"], "disconnected", "{frame}");
        }
    }
    s.client()
        .apply(HUB, &to_group("g", json!("still here")))
        .await
        .unwrap();
    assert_eq!(bystander.json().await["data"], "still here");
}

/// A simple client (no subprotocol) gets the raw data: text as a text frame, binary as binary.
#[tokio::test]
async fn a_simple_client_gets_raw_frames() {
    let s = Service::start().await;
    let mut ws = s
        .connect(&s.token(|c| c.sub = Some("u".into())), "")
        .await
        .unwrap();
    let send = |data: &[u8], data_type| Action::SendToUser {
        user_id: "u".into(),
        message: ActionMessage {
            data: data.to_vec(),
            data_type,
        },
    };
    ordergrid_testing::eventually_async(
        "the connection to be registered",
        super::PATIENCE,
        async || {
            s.client()
                .apply(HUB, &send(b"ping", DataType::Text))
                .await
                .unwrap();
            match tokio::time::timeout(std::time::Duration::from_millis(200), ws.next()).await {
                Ok(Received::Text(t)) if t == "ping" => Some(()),
                _ => None,
            }
        },
    )
    .await;
    s.client()
        .apply(HUB, &send(&[0, 255], DataType::Binary))
        .await
        .unwrap();
    loop {
        match ws.next().await {
            Received::Text(t) if t == "ping" => continue,
            Received::Binary(b) => {
                assert_eq!(b, [0, 255]);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}
