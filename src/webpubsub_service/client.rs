//! The client endpoint: `GET /client/hubs/{hub}` (or `/client/?hub={hub}`) upgraded to a
//! WebSocket, as the service's client protocol documents it (concept-client-protocols):
//! - the access token in `access_token=` or `Authorization: Bearer`, HS256 over the access key,
//!   `aud` the client URL as the request reached the service (compared ignoring case, as
//!   Microsoft's emulator compares it, `WebPubSubTokenService.cs`), `exp` required, five
//!   minutes of clock skew; `sub` the user, `role` and `webpubsub.group` one value or many;
//!   a missing or bad token is answered 401 before any upgrade;
//! - a reliable client's reconnect, `awps_connection_id` and `awps_reconnection_token` with no
//!   access token: the session's unacknowledged messages are replayed; an unknown or expired
//!   session is closed with 1008, which tells the official client to stop trying
//!   (howto-develop-reliable-clients);
//! - the frames of [`super::frames`]: join and leave need `webpubsub.joinLeaveGroup[.<group>]`,
//!   sending needs `webpubsub.sendToGroup[.<group>]`, otherwise the ack says `Forbidden`; a
//!   repeated ack id is acked `Duplicate`; `ping` gets `pong`.
//!
//! What the service does with a frame it cannot read is not documented: here the connection
//! is closed with 1008 after a `disconnected` frame that says why, and nothing else is touched.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt as _;
use serde::Deserialize;

use super::frames::{self, AckError, Origin, Prepared, Protocol, Request};
use super::hub::{Hub, Target};
use super::rest::{valid_group, valid_hub};
use super::session::{Attachment, Permission, Permissions, Session};
use super::{MAX_MESSAGE_BYTES, Service};
use crate::webpubsub::token;

#[derive(Debug, Default, Deserialize)]
pub struct ClientQuery {
    hub: Option<String>,
    access_token: Option<String>,
    awps_connection_id: Option<String>,
    awps_reconnection_token: Option<String>,
}

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

pub async fn connect_to_hub(
    State(service): State<Arc<Service>>,
    Path(hub): Path<String>,
    Query(query): Query<ClientQuery>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Response {
    accept(
        service,
        &hub,
        &format!("/client/hubs/{hub}"),
        query,
        &headers,
        upgrade,
    )
}

pub async fn connect(
    State(service): State<Arc<Service>>,
    Query(query): Query<ClientQuery>,
    headers: HeaderMap,
    upgrade: Upgrade,
) -> Response {
    let Some(hub) = query.hub.clone() else {
        return (
            StatusCode::BAD_REQUEST,
            "the hub is missing: /client/hubs/{hub} or /client/?hub={hub}",
        )
            .into_response();
    };
    // Tokens name the hub's path form whichever endpoint form the client uses.
    accept(
        service,
        &hub,
        &format!("/client/hubs/{hub}"),
        query,
        &headers,
        upgrade,
    )
}

fn accept(
    service: Arc<Service>,
    hub_name: &str,
    path: &str,
    query: ClientQuery,
    headers: &HeaderMap,
    upgrade: Upgrade,
) -> Response {
    if !valid_hub(hub_name) {
        return (
            StatusCode::BAD_REQUEST,
            format!("{hub_name:?} is not a valid hub name"),
        )
            .into_response();
    }
    let mut upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let offered: Vec<String> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .flat_map(|p| p.split(','))
        .map(|p| p.trim().to_owned())
        .collect();
    let protocol = match Protocol::choose(offered.iter().map(String::as_str)) {
        Some((protocol, name)) => {
            upgrade.set_selected_protocol(HeaderValue::from_static(name));
            protocol
        }
        None => Protocol::Simple,
    };
    // The frame limit leaves room over Azure's message limit so that a message just over it is
    // read and answered with 1009 here; far larger ones fail in the WebSocket reader.
    // The read buffer is allocated per connection up front and clients send little (acks,
    // joins, the odd group message), so it is small: 1 KiB instead of 4 KiB took the service
    // from 9.8 to 6.7 KB of RSS per idle connection with 10,000 clients (bench/webpubsub.sh);
    // a larger message is read in more, smaller reads.
    let upgrade = upgrade
        .read_buffer_size(1024)
        .max_message_size(2 * MAX_MESSAGE_BYTES)
        .max_frame_size(2 * MAX_MESSAGE_BYTES);
    let hub = service.hubs.hub(hub_name);

    if let (Some(id), Some(presented)) = (&query.awps_connection_id, &query.awps_reconnection_token)
    {
        let session = hub.connection(id).filter(|s| {
            s.protocol == Protocol::Reliable && s.reconnection_token_matches(presented)
        });
        return upgrade.on_upgrade(move |socket| async move {
            match session {
                Some(session) => {
                    let attachment = session.attach();
                    serve(socket, service, hub, session, attachment).await;
                }
                None => close(socket, 1008, "the connection cannot be recovered").await,
            }
        });
    }

    let Some(presented) = query.access_token.clone().or_else(|| bearer(headers)) else {
        return unauthorized("an access token is required: access_token= or Authorization: Bearer");
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let expected = format!("http://{host}{path}");
    let audience_matches = |aud: &str| aud.trim_end_matches('/').eq_ignore_ascii_case(&expected);
    let claims = match token::verify(
        &presented,
        &service.key,
        token::now_seconds(),
        audience_matches,
        &expected,
    ) {
        Ok(claims) => claims,
        Err(e) => return unauthorized(&e.to_string()),
    };
    let roles = claims.role.values();
    let groups: Vec<String> = claims
        .groups
        .values()
        .into_iter()
        .filter(|g| valid_group(g))
        .collect();
    let session = Arc::new(Session::new(
        uuid::Uuid::new_v4().simple().to_string().into(),
        claims.sub.map(Into::into),
        protocol,
        Permissions::from_roles(&roles),
        service.max_unacked,
    ));
    upgrade.on_upgrade(move |socket| async move {
        let attachment = session.attach();
        hub.add(session.clone(), &groups);
        serve(socket, service, hub, session, attachment).await;
    })
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn unauthorized(why: &str) -> Response {
    (StatusCode::UNAUTHORIZED, why.to_owned()).into_response()
}

async fn close(mut socket: WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// How a socket ended, which decides what becomes of its session.
enum Ended {
    /// The client closed it, or the service did for good: the session ends.
    ForGood,
    /// The network dropped: a reliable session waits for a reconnect.
    Dropped,
}

/// Serves one socket until it closes: frames queued for the session go out (batched into one
/// flush when several are waiting), the client's frames are answered.
async fn serve(
    mut socket: WebSocket,
    service: Arc<Service>,
    hub: Arc<Hub>,
    session: Arc<Session>,
    attachment: Attachment,
) {
    let Attachment {
        mut frames,
        stop,
        generation,
    } = attachment;
    let ended = loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => {
                let (code, reason) = session.close_reason();
                if session.protocol != Protocol::Simple {
                    let _ = socket.feed(Message::Text(frames::disconnected(&reason))).await;
                }
                let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                break if code == 1011 { Ended::Dropped } else { Ended::ForGood };
            }
            frame = frames.recv() => {
                let Some(frame) = frame else { break Ended::Dropped };
                if socket.feed(frame).await.is_err() {
                    break Ended::Dropped;
                }
                let mut more = 0;
                while more < 256 && let Ok(frame) = frames.try_recv() {
                    more += 1;
                    if socket.feed(frame).await.is_err() {
                        break;
                    }
                }
                if socket.flush().await.is_err() {
                    break Ended::Dropped;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) if text.len() > MAX_MESSAGE_BYTES => {
                    session.close(1009, "the message is larger than 1 MB");
                }
                Some(Ok(Message::Binary(bytes))) if bytes.len() > MAX_MESSAGE_BYTES => {
                    session.close(1009, "the message is larger than 1 MB");
                }
                Some(Ok(Message::Text(text))) if session.protocol != Protocol::Simple => {
                    match handle(&hub, &session, text.as_str()) {
                        Ok(replies) => {
                            for reply in replies {
                                let _ = socket.feed(Message::Text(reply)).await;
                            }
                            if socket.flush().await.is_err() {
                                break Ended::Dropped;
                            }
                        }
                        Err(why) => {
                            tracing::info!(connection = %session.id, reason = %why, "closing a Web PubSub client that broke the protocol");
                            session.close(1008, &why);
                        }
                    }
                }
                Some(Ok(Message::Binary(_))) if session.protocol != Protocol::Simple => {
                    session.close(1003, "a JSON subprotocol client must send JSON text frames");
                }
                // A simple client's frames are events for an upstream handler; none is
                // configured locally, so they go nowhere (as on Azure without an event handler).
                Some(Ok(Message::Close(_))) => break Ended::ForGood,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(connection = %session.id, error = %e, "a Web PubSub client's socket failed");
                    // axum hides tungstenite's error type; its messages tell a client that broke
                    // the protocol (closed for good, with the RFC 6455 code) from a network
                    // failure (a reliable session waits for the reconnect).
                    let reason = e.to_string();
                    let code = if reason.contains("without closing handshake") { None } else { [("Space limit exceeded", 1009), ("WebSocket protocol error", 1002), ("UTF-8", 1007)]
                        .into_iter()
                        .find_map(|(text, code)| reason.contains(text).then_some(code)) };
                    let Some(code) = code else { break Ended::Dropped };
                    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break Ended::ForGood;
                }
                None => break Ended::Dropped,
            },
        }
    };
    if !session.detach(generation) {
        return; // a reconnect replaced this socket
    }
    match (ended, session.protocol) {
        (Ended::Dropped, Protocol::Reliable) if !service.stop.is_cancelled() => {
            let window = service.recovery_window;
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                if session.still_detached(generation) {
                    hub.remove(&session.id);
                }
            });
        }
        _ => {
            hub.remove(&session.id);
        }
    }
}

/// Answers one frame of a JSON client; an error closes the connection.
fn handle(
    hub: &Hub,
    session: &Arc<Session>,
    text: &str,
) -> Result<Vec<axum::extract::ws::Utf8Bytes>, String> {
    let request = Request::parse(text).map_err(|e| e.to_string())?;
    let ack_id = match &request {
        Request::JoinGroup { ack_id, .. }
        | Request::LeaveGroup { ack_id, .. }
        | Request::SendToGroup { ack_id, .. }
        | Request::Event { ack_id, .. } => *ack_id,
        Request::SequenceAck { .. } | Request::Ping => None,
    };
    if let Some(id) = ack_id
        && !session.first_use_of_ack_id(id)
    {
        return Ok(vec![frames::ack(
            id,
            Err((
                AckError::Duplicate,
                "the ackId was already used on this connection",
            )),
        )]);
    }
    let outcome: Result<(), (AckError, String)> = match request {
        Request::Ping => return Ok(vec![frames::pong()]),
        Request::SequenceAck { sequence_id } => {
            session.acknowledge(sequence_id);
            return Ok(Vec::new());
        }
        Request::JoinGroup { group, .. } => membership(hub, session, &group, true),
        Request::LeaveGroup { group, .. } => membership(hub, session, &group, false),
        Request::SendToGroup {
            group,
            no_echo,
            data_type,
            data,
            ..
        } => {
            if !session.allows(Permission::SendToGroup, &group) {
                Err((
                    AckError::Forbidden,
                    format!("the connection may not send to {group:?}"),
                ))
            } else {
                let (bytes, data_type) = frames::client_message(data_type.as_deref(), data)
                    .map_err(|e| e.to_string())?;
                let message = Prepared::new(
                    Origin::Group {
                        group: &group,
                        from_user: session.user.as_deref(),
                    },
                    &bytes,
                    data_type,
                );
                let excluded = if no_echo {
                    vec![session.id.to_string()]
                } else {
                    Vec::new()
                };
                hub.send(Target::Group(&group), &excluded, &message);
                Ok(())
            }
        }
        // Events go to an upstream event handler; none is configured locally. What Azure acks
        // for an event with no handler is not documented; here it succeeds and goes nowhere.
        Request::Event {
            data_type, data, ..
        } => {
            frames::client_message(data_type.as_deref(), data).map_err(|e| e.to_string())?;
            Ok(())
        }
    };
    Ok(ack_id
        .map(|id| {
            frames::ack(
                id,
                outcome
                    .as_ref()
                    .map(|_| ())
                    .map_err(|(e, m)| (*e, m.as_str())),
            )
        })
        .into_iter()
        .collect())
}

/// A client's join (`join`) or leave of `group`, if its roles allow it.
fn membership(
    hub: &Hub,
    session: &Session,
    group: &str,
    join: bool,
) -> Result<(), (AckError, String)> {
    let verb = if join { "join" } else { "leave" };
    if !valid_group(group) {
        return Err((
            AckError::BadRequest,
            format!("{group:?} is not a valid group name"),
        ));
    }
    if !session.allows(Permission::JoinLeaveGroup, group) {
        return Err((
            AckError::Forbidden,
            format!("the connection may not {verb} {group:?}"),
        ));
    }
    if join {
        hub.join(&session.id, group);
    } else {
        hub.leave(&session.id, group);
    }
    Ok(())
}
