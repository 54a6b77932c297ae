//! The `webPubSub` output binding's actions, parsed as the Functions extension parses what a
//! handler returns (`WebPubSubConfigProvider`, `BinaryDataJsonConverter`): one action object or
//! an array of them; `actionName` matched ignoring case (an unknown one fails the invocation:
//! "Not supported WebPubSubOperation"); property names ignoring case, as Newtonsoft reads them;
//! `data` a string for `json` and `text` ("Message should be string, please stringify object."),
//! or a Node `Buffer` (`{"type":"Buffer","data":[…]}`); `dataType` `text` (default), `json` or
//! `binary`.

use base64::Engine as _;
use serde_json::{Map, Value};

/// What the message's bytes are, and the REST `Content-Type` that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    Text,
    Json,
    Binary,
}

impl DataType {
    pub fn content_type(self) -> &'static str {
        match self {
            DataType::Text => "text/plain",
            DataType::Json => "application/json",
            DataType::Binary => "application/octet-stream",
        }
    }

    /// The frame `dataType` a subprotocol client sees for a REST body of `content_type`.
    pub fn of_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "text/plain" => Some(DataType::Text),
            "application/json" => Some(DataType::Json),
            "application/octet-stream" => Some(DataType::Binary),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::Text => "text",
            DataType::Json => "json",
            DataType::Binary => "binary",
        }
    }
}

/// A message an action sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub data: Vec<u8>,
    pub data_type: DataType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    SendToAll {
        message: Message,
        excluded: Vec<String>,
    },
    SendToGroup {
        group: String,
        message: Message,
        excluded: Vec<String>,
    },
    SendToUser {
        user_id: String,
        message: Message,
    },
    SendToConnection {
        connection_id: String,
        message: Message,
    },
    AddUserToGroup {
        user_id: String,
        group: String,
    },
    RemoveUserFromGroup {
        user_id: String,
        group: String,
    },
    RemoveUserFromAllGroups {
        user_id: String,
    },
    AddConnectionToGroup {
        connection_id: String,
        group: String,
    },
    RemoveConnectionFromGroup {
        connection_id: String,
        group: String,
    },
    CloseAllConnections {
        excluded: Vec<String>,
        reason: Option<String>,
    },
    CloseClientConnection {
        connection_id: String,
        reason: Option<String>,
    },
    CloseGroupConnections {
        group: String,
        excluded: Vec<String>,
        reason: Option<String>,
    },
}

/// Why an output could not be read as actions; the invocation fails, as the extension's
/// exception fails it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub String);

/// The actions in an output value: one object, or an array of objects.
pub fn parse(value: &Value) -> Result<Vec<Action>, ActionError> {
    match value {
        Value::Array(items) => items.iter().map(parse_one).collect(),
        Value::Object(_) => Ok(vec![parse_one(value)?]),
        Value::Null => Ok(Vec::new()),
        other => Err(ActionError(format!(
            "a webPubSub output must be an action object or an array of them, not {other}"
        ))),
    }
}

fn parse_one(value: &Value) -> Result<Action, ActionError> {
    let Value::Object(object) = value else {
        return Err(ActionError(format!("{value} is not an action object")));
    };
    let props = Props(object);
    let name = props.string("actionName")?;
    let action = match name.to_ascii_lowercase().as_str() {
        "sendtoall" => Action::SendToAll {
            message: props.message()?,
            excluded: props.strings("excluded")?,
        },
        "sendtogroup" => Action::SendToGroup {
            group: props.string("group")?,
            message: props.message()?,
            excluded: props.strings("excluded")?,
        },
        "sendtouser" => Action::SendToUser {
            user_id: props.string("userId")?,
            message: props.message()?,
        },
        "sendtoconnection" => Action::SendToConnection {
            connection_id: props.string("connectionId")?,
            message: props.message()?,
        },
        "addusertogroup" => Action::AddUserToGroup {
            user_id: props.string("userId")?,
            group: props.string("group")?,
        },
        "removeuserfromgroup" => Action::RemoveUserFromGroup {
            user_id: props.string("userId")?,
            group: props.string("group")?,
        },
        "removeuserfromallgroups" => Action::RemoveUserFromAllGroups {
            user_id: props.string("userId")?,
        },
        "addconnectiontogroup" => Action::AddConnectionToGroup {
            connection_id: props.string("connectionId")?,
            group: props.string("group")?,
        },
        "removeconnectionfromgroup" => Action::RemoveConnectionFromGroup {
            connection_id: props.string("connectionId")?,
            group: props.string("group")?,
        },
        "closeallconnections" => Action::CloseAllConnections {
            excluded: props.strings("excluded")?,
            reason: props.optional("reason")?,
        },
        "closeclientconnection" => Action::CloseClientConnection {
            connection_id: props.string("connectionId")?,
            reason: props.optional("reason")?,
        },
        "closegroupconnections" => Action::CloseGroupConnections {
            group: props.string("group")?,
            excluded: props.strings("excluded")?,
            reason: props.optional("reason")?,
        },
        // grantPermission / revokePermission are not served by the local service.
        _ => {
            return Err(ActionError(format!(
                "Not supported WebPubSubOperation: {name}"
            )));
        }
    };
    Ok(action)
}

/// An action's properties, looked up ignoring case.
struct Props<'a>(&'a Map<String, Value>);

impl Props<'_> {
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name).or_else(|| {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }

    fn optional(&self, name: &str) -> Result<Option<String>, ActionError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ActionError(format!("{name} must be a string, not {other}"))),
        }
    }

    fn string(&self, name: &str) -> Result<String, ActionError> {
        self.optional(name)?
            .ok_or_else(|| ActionError(format!("the action has no {name}")))
    }

    fn strings(&self, name: &str) -> Result<Vec<String>, ActionError> {
        match self.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| ActionError(format!("{name} holds {v}, not a string")))
                })
                .collect(),
            Some(other) => Err(ActionError(format!("{name} must be a list, not {other}"))),
        }
    }

    fn message(&self) -> Result<Message, ActionError> {
        let data_type = match self.optional("dataType")?.as_deref() {
            None => DataType::Text,
            Some(t) => match t.to_ascii_lowercase().as_str() {
                "text" => DataType::Text,
                "json" => DataType::Json,
                "binary" => DataType::Binary,
                _ => {
                    return Err(ActionError(format!(
                        "dataType {t:?} is not text, json or binary"
                    )));
                }
            },
        };
        let data = match self.get("data") {
            Some(Value::String(s)) => match data_type {
                // A binary message given as a string is base64, as the extension reads it.
                DataType::Binary => base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|_| {
                        ActionError("binary data given as a string must be base64".into())
                    })?,
                _ => s.clone().into_bytes(),
            },
            Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("Buffer") => o
                .get("data")
                .and_then(Value::as_array)
                .and_then(|bytes| {
                    bytes
                        .iter()
                        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect::<Option<Vec<u8>>>()
                })
                .ok_or_else(|| ActionError("a Buffer's data must be a list of bytes".into()))?,
            Some(Value::Object(_) | Value::Array(_)) => {
                return Err(ActionError(
                    "Message should be string, please stringify object.".into(),
                ));
            }
            None | Some(Value::Null) => {
                return Err(ActionError("the action has no data".into()));
            }
            Some(other) => other.to_string().into_bytes(),
        };
        Ok(Message { data, data_type })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn actions_are_read_ignoring_case_with_text_as_the_default() {
        let actions = parse(&json!([
            {"actionName": "SendToGroup", "group": "order-1", "dataType": "json", "data": "{\"a\":1}"},
            {"ACTIONNAME": "sendToAll", "Data": "hi"},
            {"actionName": "addUserToGroup", "userId": "u", "group": "g"}
        ]))
        .unwrap();
        assert_eq!(
            actions,
            [
                Action::SendToGroup {
                    group: "order-1".into(),
                    message: Message {
                        data: br#"{"a":1}"#.to_vec(),
                        data_type: DataType::Json
                    },
                    excluded: vec![]
                },
                Action::SendToAll {
                    message: Message {
                        data: b"hi".to_vec(),
                        data_type: DataType::Text
                    },
                    excluded: vec![]
                },
                Action::AddUserToGroup {
                    user_id: "u".into(),
                    group: "g".into()
                }
            ]
        );
    }

    #[test]
    fn what_the_extension_refuses_is_refused_with_its_message() {
        let object =
            parse(&json!({"actionName": "sendToAll", "dataType": "json", "data": {"a": 1}}));
        assert_eq!(
            object.unwrap_err().0,
            "Message should be string, please stringify object."
        );
        let unknown = parse(&json!({"actionName": "sendToEveryone", "data": "x"}));
        assert!(
            unknown
                .unwrap_err()
                .0
                .starts_with("Not supported WebPubSubOperation")
        );
        assert!(parse(&json!({"actionName": "sendToGroup", "data": "x"})).is_err());
        let buffer = parse(
            &json!({"actionName": "sendToAll", "dataType": "binary", "data": {"type": "Buffer", "data": [1, 2]}}),
        );
        assert!(
            matches!(&buffer.unwrap()[0], Action::SendToAll { message, .. } if message.data == [1, 2])
        );
    }
}
