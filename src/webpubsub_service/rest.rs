//! The REST data plane (api-version 2024-12-01 and earlier; any `api-version` is accepted, as
//! Microsoft's emulator accepts it): sends to the hub, a group, a user or a connection, group
//! membership, permissions, closing connections, existence checks, the token API and health.
//! Routes, status codes and name patterns are the published spec's
//! (azure-rest-api-specs, `specification/webpubsub/data-plane/WebPubSub/stable/2024-12-01/webpubsub.json`):
//! sends answer 202 and reach whoever is there (nobody is fine), additions and grants 200,
//! removals, revocations and closes 204, existence checks 200 or 404.
//!
//! Requests are signed as the service signs them (reference-rest-api-data-plane):
//! `Authorization: Bearer` with an HS256 JWT over the access key whose `aud` is the request
//! URL, with or without its query (the SDKs differ; the service accepts both). Microsoft Entra
//! ID tokens are not accepted locally: the local stack reaches the service with its key.
//! Errors are the spec's `ErrorDetail`, `{"code": …, "message": …}`.
//!
//! Not served here: OData `filter` on sends and `:addToGroups`/`:removeFromGroups` (answered
//! 400 saying so), message time-to-live (`messageTtlSeconds` is accepted and not applied).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use super::frames::{Origin, Prepared};
use super::hub::{Hub, Target};
use super::session::Permission;
use super::{MAX_MESSAGE_BYTES, Service};
use crate::webpubsub::actions::DataType;
use crate::webpubsub::token::{self, Claims};

/// The REST surface's one error type.
#[derive(Debug)]
pub struct RestError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl RestError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({"code": self.code, "message": self.message})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("a header value"),
            );
        }
        response
    }
}

/// Hub names, as the spec's pattern `^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$` has them.
pub fn valid_hub(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || "_`,.[]".contains(c))
}

/// Group names: `^(?!\s+$).{1,1024}$`.
pub fn valid_group(name: &str) -> bool {
    !name.is_empty() && name.chars().count() <= 1024 && !name.chars().all(char::is_whitespace)
}

/// User and connection ids: `^(?!\s+$).+$`.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && !id.chars().all(char::is_whitespace)
}

/// A query string's pairs, repeated names kept (`excluded`, `role`, `group` repeat).
struct QueryPairs(Vec<(String, String)>);

impl QueryPairs {
    fn parse(query: Option<&str>) -> Self {
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        Self(
            query
                .unwrap_or("")
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (decode(k), decode(v)),
                    None => (decode(p), String::new()),
                })
                .collect(),
        )
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn one(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next().filter(|v| !v.is_empty())
    }
}

/// Every request that is not the client endpoint.
pub async fn handle(
    State(service): State<Arc<Service>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if crate::http_server::timed_out(&e) => {
            return StatusCode::REQUEST_TIMEOUT.into_response();
        }
        Err(e) => return e.into_response(),
    };
    match route(&service, &method, &uri, &headers, body) {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

fn route(
    service: &Service,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, RestError> {
    let segments: Vec<String> = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if segments == ["api", "health"] && (method == Method::HEAD || method == Method::GET) {
        return Ok(StatusCode::OK.into_response());
    }
    let ["api", "hubs", hub, rest @ ..] = segments.as_slice() else {
        return Err(RestError::not_found(format!(
            "no such resource: {}",
            uri.path()
        )));
    };
    if !valid_hub(hub) {
        return Err(RestError::bad_request(format!(
            "{hub:?} is not a valid hub name"
        )));
    }
    authorize(service, uri, headers)?;
    let query = QueryPairs::parse(uri.query());
    if query.one("filter").is_some() {
        return Err(RestError::bad_request(
            "OData filters are not supported by the local Web PubSub service",
        ));
    }
    let excluded = query.all("excluded");
    let reason = query.one("reason").unwrap_or_default();
    let h = service.hubs.hub(hub);
    let m = method.clone();
    let done = |status: StatusCode| Ok(status.into_response());
    let exists = |found: bool, what: &str| {
        if found {
            Ok(StatusCode::OK.into_response())
        } else {
            Err(RestError::not_found(format!("{what} does not exist")))
        }
    };
    match (m, rest) {
        (Method::POST, [":send"]) => send(&h, Target::All, &excluded, headers, &body),
        (Method::POST, [":generateToken"]) => generate_token(service, hub, headers, &query),
        (Method::POST, [":closeConnections"]) => {
            h.close(Target::All, &excluded, 1000, &reason);
            done(StatusCode::NO_CONTENT)
        }
        (Method::POST, [":addToGroups" | ":removeFromGroups"]) => Err(RestError::bad_request(
            "adding and removing by OData filter is not supported by the local Web PubSub service",
        )),
        (Method::HEAD, ["connections", id]) => exists(h.connection(id).is_some(), "the connection"),
        (Method::DELETE, ["connections", id]) => {
            h.close(Target::Connection(id), &[], 1000, &reason);
            done(StatusCode::NO_CONTENT)
        }
        (Method::POST, ["connections", id, ":send"]) => {
            if h.connection(id).is_none() {
                return Err(RestError::not_found(format!(
                    "connection {id:?} does not exist"
                )));
            }
            send(&h, Target::Connection(id), &[], headers, &body)
        }
        (Method::HEAD, ["groups", group]) => {
            check_group(group)?;
            exists(h.has_group(group), "the group")
        }
        (Method::GET, ["groups", group, "connections"]) => {
            check_group(group)?;
            let value: Vec<serde_json::Value> = h
                .group_connections(group)
                .into_iter()
                .map(|(id, user)| serde_json::json!({"connectionId": &*id, "userId": user.as_deref()}))
                .collect();
            Ok(axum::Json(serde_json::json!({"value": value, "nextLink": null})).into_response())
        }
        (Method::POST, ["groups", group, ":send"]) => {
            check_group(group)?;
            send(&h, Target::Group(group), &excluded, headers, &body)
        }
        (Method::POST, ["groups", group, ":closeConnections"]) => {
            check_group(group)?;
            h.close(Target::Group(group), &excluded, 1000, &reason);
            done(StatusCode::NO_CONTENT)
        }
        (Method::PUT, ["groups", group, "connections", id]) => {
            check_group(group)?;
            if h.join(id, group) {
                done(StatusCode::OK)
            } else {
                Err(RestError::not_found(format!(
                    "connection {id:?} does not exist"
                )))
            }
        }
        (Method::DELETE, ["groups", group, "connections", id]) => {
            check_group(group)?;
            if h.connection(id).is_none() {
                return Err(RestError::not_found(format!(
                    "connection {id:?} does not exist"
                )));
            }
            h.leave(id, group);
            done(StatusCode::NO_CONTENT)
        }
        (Method::DELETE, ["connections", id, "groups"]) => {
            h.leave_all(id);
            done(StatusCode::NO_CONTENT)
        }
        (Method::HEAD, ["users", user]) => exists(h.has_user(user), "the user"),
        (Method::POST, ["users", user, ":send"]) => {
            check_id(user)?;
            send(&h, Target::User(user), &[], headers, &body)
        }
        (Method::POST, ["users", user, ":closeConnections"]) => {
            h.close(Target::User(user), &excluded, 1000, &reason);
            done(StatusCode::NO_CONTENT)
        }
        (Method::PUT, ["users", user, "groups", group]) => {
            check_group(group)?;
            if !h.has_user(user) {
                return Err(RestError::not_found(format!(
                    "user {user:?} has no connection"
                )));
            }
            h.add_user_to_group(user, group);
            done(StatusCode::OK)
        }
        (Method::DELETE, ["users", user, "groups", group]) => {
            check_group(group)?;
            h.remove_user_from_group(user, Some(group));
            done(StatusCode::NO_CONTENT)
        }
        (Method::DELETE, ["users", user, "groups"]) => {
            h.remove_user_from_group(user, None);
            done(StatusCode::NO_CONTENT)
        }
        (
            m @ (Method::PUT | Method::DELETE | Method::HEAD),
            ["permissions", permission, "connections", id],
        ) => {
            let permission = Permission::parse(permission).ok_or_else(|| {
                RestError::bad_request(format!(
                    "{permission:?} is not a permission: joinLeaveGroup or sendToGroup"
                ))
            })?;
            let session = h
                .connection(id)
                .ok_or_else(|| RestError::not_found(format!("connection {id:?} does not exist")))?;
            let target = query.one("targetName");
            let target = target.as_deref();
            match m {
                Method::PUT => {
                    session.update_permissions(|p| p.grant(permission, target));
                    done(StatusCode::OK)
                }
                Method::DELETE => {
                    session.update_permissions(|p| p.revoke(permission, target));
                    done(StatusCode::NO_CONTENT)
                }
                _ => exists(
                    session.permissions().check(permission, target),
                    "the permission",
                ),
            }
        }
        (_, _) => Err(RestError::not_found(format!(
            "no such operation: {method} {}",
            uri.path()
        ))),
    }
}

fn check_group(group: &str) -> Result<(), RestError> {
    if valid_group(group) {
        Ok(())
    } else {
        Err(RestError::bad_request(format!(
            "{group:?} is not a valid group name"
        )))
    }
}

fn check_id(id: &str) -> Result<(), RestError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(RestError::bad_request(format!("{id:?} is not a valid id")))
    }
}

/// Checks the bearer token against the request URL, with and without its query.
fn authorize(service: &Service, uri: &Uri, headers: &HeaderMap) -> Result<(), RestError> {
    let unauthorized = |m: String| RestError::new(StatusCode::UNAUTHORIZED, "Unauthorized", m);
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| unauthorized("an Authorization: Bearer access token is required".into()))?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let without_query = format!("http://{host}{}", uri.path());
    let with_query = match uri.query() {
        Some(q) => format!("{without_query}?{q}"),
        None => without_query.clone(),
    };
    let matches = |aud: &str| {
        let decoded = percent_decode_str(aud).decode_utf8_lossy();
        [aud, decoded.as_ref()].iter().any(|a| {
            let a = a.trim_end_matches('/');
            a.eq_ignore_ascii_case(&without_query) || a.eq_ignore_ascii_case(&with_query)
        })
    };
    token::verify(
        presented,
        &service.key,
        token::now_seconds(),
        matches,
        &with_query,
    )
    .map(drop)
    .map_err(|e| unauthorized(e.to_string()))
}

fn send(
    hub: &Hub,
    target: Target<'_>,
    excluded: &[String],
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, RestError> {
    if let Target::Connection(id) | Target::User(id) = target {
        check_id(id)?;
    }
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(RestError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!(
                "the message is {} bytes; the limit is {MAX_MESSAGE_BYTES}",
                body.len()
            ),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let data_type = DataType::of_content_type(content_type).ok_or_else(|| {
        RestError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!("Content-Type {content_type:?} is not text/plain, application/json or application/octet-stream"),
        )
    })?;
    match data_type {
        DataType::Json if serde_json::from_slice::<&serde_json::value::RawValue>(body).is_err() => {
            return Err(RestError::bad_request(
                "the application/json body is not JSON",
            ));
        }
        DataType::Text if std::str::from_utf8(body).is_err() => {
            return Err(RestError::bad_request("the text/plain body is not UTF-8"));
        }
        _ => {}
    }
    let origin = match target {
        Target::Group(group) => Origin::Group {
            group,
            from_user: None,
        },
        _ => Origin::Server,
    };
    let message = Prepared::new(origin, body, data_type);
    hub.send(target, excluded, &message);
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `:generateToken`: a client token signed with the key, for `userId`, `role`s and `group`s,
/// valid `minutesToExpire` (default 60, the SDKs' default lifetime).
fn generate_token(
    service: &Service,
    hub: &str,
    headers: &HeaderMap,
    query: &QueryPairs,
) -> Result<Response, RestError> {
    let minutes = match query.one("minutesToExpire") {
        None => 60,
        Some(m) => m.parse::<i64>().ok().filter(|m| *m > 0).ok_or_else(|| {
            RestError::bad_request(format!("minutesToExpire {m:?} is not a positive number"))
        })?,
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let mut claims = Claims::new(
        &format!("http://{host}/client/hubs/{hub}"),
        token::now_seconds(),
        minutes * 60,
    );
    claims.sub = query.one("userId");
    claims.role = token::OneOrMany::of(query.all("role"));
    claims.groups = token::OneOrMany::of(query.all("group"));
    let token = token::sign(&claims, &service.key);
    Ok(axum::Json(HashMap::from([("token", token)])).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_specs_patterns() {
        assert!(valid_hub("orders") && valid_hub("a_1.b"));
        assert!(!valid_hub("1orders") && !valid_hub("") && !valid_hub("or ders"));
        assert!(!valid_hub(&"a".repeat(129)));
        assert!(valid_group("order-42") && valid_group("a b"));
        assert!(!valid_group("   ") && !valid_group("") && !valid_group(&"g".repeat(1025)));
        assert!(valid_id("u") && !valid_id(" "));
    }

    #[test]
    fn query_pairs_keep_repeats_and_decode() {
        let q = QueryPairs::parse(Some(
            "excluded=a&excluded=b%20c&role=x+y&api-version=2024-12-01",
        ));
        assert_eq!(q.all("excluded"), ["a", "b c"]);
        assert_eq!(q.one("role").as_deref(), Some("x y"));
        assert_eq!(q.one("missing"), None);
    }
}
