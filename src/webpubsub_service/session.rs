//! One client connection as the service keeps it: who it is, what its roles allow, and where
//! its frames go. A reliable connection outlives its WebSocket: its messages are numbered and
//! kept until the client acknowledges them, and a reconnect with its reconnection token picks
//! up where it left off.
//!
//! Invariants:
//! - frames reach a socket in the order they were delivered to the session; a reconnect first
//!   gets `connected`, then every unacknowledged message in order, then new ones (all under the
//!   session's lock, so nothing interleaves);
//! - a socket's queue is bounded: a client that cannot keep up is closed, never allowed to grow
//!   the service's memory (a reliable client keeps its session and gets the backlog on
//!   reconnect, up to its unacknowledged bound);
//! - a reconnection token is compared in constant time.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::{Message, Utf8Bytes};
use subtle::ConstantTimeEq as _;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::frames::{self, Prepared, Protocol};

/// Frames a socket may have queued before its client counts as too slow for a plain
/// connection. A reliable connection's bound is its unacknowledged limit.
const SOCKET_QUEUE: usize = 1024;
/// Ack ids remembered per connection to answer a repeat with `Duplicate`.
const ACK_IDS_REMEMBERED: usize = 4096;

/// What a connection's roles let it do (`webpubsub.joinLeaveGroup[.<group>]`,
/// `webpubsub.sendToGroup[.<group>]`), changed later by the REST permission API.
#[derive(Debug, Default, Clone)]
pub struct Permissions {
    join_leave_any: bool,
    send_any: bool,
    join_leave: HashSet<String>,
    send: HashSet<String>,
}

/// The two permissions the REST API grants, named as its path names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    JoinLeaveGroup,
    SendToGroup,
}

impl Permission {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "joinleavegroup" => Some(Self::JoinLeaveGroup),
            "sendtogroup" => Some(Self::SendToGroup),
            _ => None,
        }
    }
}

impl Permissions {
    /// Reads the token's roles. Wildcard roles (`webpubsub.sendToGroups.{pattern}`), which
    /// Microsoft's emulator supports, are not read here: they grant nothing locally.
    pub fn from_roles(roles: &[String]) -> Self {
        let mut p = Self::default();
        for role in roles {
            if role == "webpubsub.joinLeaveGroup" {
                p.join_leave_any = true;
            } else if role == "webpubsub.sendToGroup" {
                p.send_any = true;
            } else if let Some(group) = role.strip_prefix("webpubsub.joinLeaveGroup.") {
                p.join_leave.insert(group.to_owned());
            } else if let Some(group) = role.strip_prefix("webpubsub.sendToGroup.") {
                p.send.insert(group.to_owned());
            }
        }
        p
    }

    pub fn allows(&self, permission: Permission, group: &str) -> bool {
        match permission {
            Permission::JoinLeaveGroup => self.join_leave_any || self.join_leave.contains(group),
            Permission::SendToGroup => self.send_any || self.send.contains(group),
        }
    }

    /// Grants `permission` on `group`, or on every group when `None`.
    pub fn grant(&mut self, permission: Permission, group: Option<&str>) {
        let (any, named) = self.fields(permission);
        match group {
            None => *any = true,
            Some(g) => {
                named.insert(g.to_owned());
            }
        }
    }

    /// Revokes `permission` on `group`, or every grant of it when `None`.
    pub fn revoke(&mut self, permission: Permission, group: Option<&str>) {
        let (any, named) = self.fields(permission);
        match group {
            None => {
                *any = false;
                named.clear();
            }
            Some(g) => {
                named.remove(g);
            }
        }
    }

    /// Whether `permission` is held on `group` (`None`: on every group).
    pub fn check(&self, permission: Permission, group: Option<&str>) -> bool {
        match group {
            Some(g) => self.allows(permission, g),
            None => match permission {
                Permission::JoinLeaveGroup => self.join_leave_any,
                Permission::SendToGroup => self.send_any,
            },
        }
    }

    fn fields(&mut self, permission: Permission) -> (&mut bool, &mut HashSet<String>) {
        match permission {
            Permission::JoinLeaveGroup => (&mut self.join_leave_any, &mut self.join_leave),
            Permission::SendToGroup => (&mut self.send_any, &mut self.send),
        }
    }
}

/// The receiving end of a session's socket queue, held by the task serving the WebSocket.
pub struct Attachment {
    pub frames: mpsc::Receiver<Message>,
    /// Cancelled when the service closes this socket; [`Session::close_reason`] says why.
    pub stop: CancellationToken,
    pub generation: u64,
}

struct Socket {
    frames: mpsc::Sender<Message>,
    stop: CancellationToken,
}

/// What became of a message delivered to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Queued,
    /// The session was closed for good (a reliable client's backlog passed its bound); the hub
    /// removes it.
    Dropped,
}

struct State {
    permissions: Permissions,
    next_sequence: u64,
    unacked: VecDeque<(u64, Utf8Bytes)>,
    socket: Option<Socket>,
    generation: u64,
    ack_ids: HashSet<u64>,
    ack_order: VecDeque<u64>,
    /// Why the service closed the socket: close code and reason.
    close: Option<(u16, String)>,
}

pub struct Session {
    pub id: Arc<str>,
    pub user: Option<Arc<str>>,
    pub protocol: Protocol,
    reconnection_token: Option<String>,
    max_unacked: usize,
    state: Mutex<State>,
}

impl Session {
    pub fn new(
        id: Arc<str>,
        user: Option<Arc<str>>,
        protocol: Protocol,
        permissions: Permissions,
        max_unacked: usize,
    ) -> Self {
        let reconnection_token =
            (protocol == Protocol::Reliable).then(|| uuid::Uuid::new_v4().simple().to_string());
        Self {
            id,
            user,
            protocol,
            reconnection_token,
            max_unacked,
            state: Mutex::new(State {
                permissions,
                next_sequence: 0,
                unacked: VecDeque::new(),
                socket: None,
                generation: 0,
                ack_ids: HashSet::new(),
                ack_order: VecDeque::new(),
                close: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn reconnection_token(&self) -> Option<&str> {
        self.reconnection_token.as_deref()
    }

    pub fn reconnection_token_matches(&self, presented: &str) -> bool {
        self.reconnection_token
            .as_deref()
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Gives the session a new socket (closing an older one still attached): it gets
    /// `connected`, then the unacknowledged messages (a reliable reconnect).
    pub fn attach(&self) -> Attachment {
        let capacity = match self.protocol {
            Protocol::Reliable => self.max_unacked + 64,
            _ => SOCKET_QUEUE,
        };
        let (tx, rx) = mpsc::channel(capacity);
        let stop = CancellationToken::new();
        let mut state = self.state();
        if let Some(old) = state.socket.take() {
            state.close = Some((1000, "replaced by a reconnection".into()));
            old.stop.cancel();
        }
        if self.protocol != Protocol::Simple {
            let connected = frames::connected(
                self.user.as_deref(),
                &self.id,
                self.reconnection_token.as_deref(),
            );
            let _ = tx.try_send(Message::Text(connected));
        }
        for (_, frame) in &state.unacked {
            let _ = tx.try_send(Message::Text(frame.clone()));
        }
        state.generation += 1;
        state.close = None;
        state.socket = Some(Socket {
            frames: tx,
            stop: stop.clone(),
        });
        Attachment {
            frames: rx,
            stop,
            generation: state.generation,
        }
    }

    /// The socket of `generation` is gone. True when that was the session's current socket.
    pub fn detach(&self, generation: u64) -> bool {
        let mut state = self.state();
        if state.generation != generation {
            return false;
        }
        state.socket = None;
        true
    }

    /// Whether the socket of `generation` is still gone (nothing reconnected since).
    pub fn still_detached(&self, generation: u64) -> bool {
        let state = self.state();
        state.generation == generation && state.socket.is_none()
    }

    /// Queues `message` for the socket; a reliable session numbers it and keeps it until acked.
    pub fn deliver(&self, message: &Prepared) -> Delivered {
        let mut state = self.state();
        let frame = match self.protocol {
            Protocol::Simple => message.simple(),
            Protocol::Json => Message::Text(message.json()),
            Protocol::Reliable => {
                state.next_sequence += 1;
                let sequence = state.next_sequence;
                let frame = message.sequenced(sequence);
                state.unacked.push_back((sequence, frame.clone()));
                if state.unacked.len() > self.max_unacked {
                    Self::close_locked(&mut state, 1008, "too many unacknowledged messages");
                    return Delivered::Dropped;
                }
                Message::Text(frame)
            }
        };
        let full = state
            .socket
            .as_ref()
            .is_some_and(|s| s.frames.try_send(frame).is_err());
        if full {
            // A reliable client gets the backlog when it reconnects; a plain one has lost it,
            // as on Azure, where a connection that cannot keep up is dropped.
            Self::close_locked(
                &mut state,
                1011,
                "the client did not keep up with its messages",
            );
        }
        Delivered::Queued
    }

    /// The client acknowledged every message up to `sequence_id`.
    pub fn acknowledge(&self, sequence_id: u64) {
        let mut state = self.state();
        while state
            .unacked
            .front()
            .is_some_and(|(s, _)| *s <= sequence_id)
        {
            state.unacked.pop_front();
        }
    }

    /// False when the client already used `ack_id` on this connection.
    pub fn first_use_of_ack_id(&self, ack_id: u64) -> bool {
        let mut state = self.state();
        if !state.ack_ids.insert(ack_id) {
            return false;
        }
        state.ack_order.push_back(ack_id);
        if state.ack_order.len() > ACK_IDS_REMEMBERED
            && let Some(oldest) = state.ack_order.pop_front()
        {
            state.ack_ids.remove(&oldest);
        }
        true
    }

    pub fn allows(&self, permission: Permission, group: &str) -> bool {
        self.state().permissions.allows(permission, group)
    }

    pub fn permissions(&self) -> Permissions {
        self.state().permissions.clone()
    }

    pub fn update_permissions(&self, change: impl FnOnce(&mut Permissions)) {
        change(&mut self.state().permissions);
    }

    /// Closes the socket (not the session of a reliable client, which may reconnect).
    pub fn close(&self, code: u16, reason: &str) {
        Self::close_locked(&mut self.state(), code, reason);
    }

    fn close_locked(state: &mut State, code: u16, reason: &str) {
        if let Some(socket) = state.socket.take() {
            state.close = Some((code, reason.to_owned()));
            socket.stop.cancel();
        }
    }

    /// Why the service closed the socket, once its stop token fired.
    pub fn close_reason(&self) -> (u16, String) {
        self.state()
            .close
            .clone()
            .unwrap_or((1001, "the service is stopping".into()))
    }

    #[cfg(test)]
    fn unacked(&self) -> Vec<u64> {
        self.state().unacked.iter().map(|(s, _)| *s).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webpubsub::actions::DataType;
    use bytes::Bytes;

    fn message(n: u32) -> Prepared {
        Prepared::new(
            frames::Origin::Server,
            &Bytes::from(n.to_string()),
            DataType::Json,
        )
    }

    fn texts(rx: &mut mpsc::Receiver<Message>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Message::Text(t)) = rx.try_recv() {
            out.push(t.as_str().to_owned());
        }
        out
    }

    #[test]
    fn a_reconnect_replays_what_was_not_acknowledged_in_order_after_connected() {
        let s = Session::new(
            "c".into(),
            None,
            Protocol::Reliable,
            Permissions::default(),
            10,
        );
        let mut first = s.attach();
        for n in 1..=3 {
            s.deliver(&message(n));
        }
        assert_eq!(texts(&mut first.frames).len(), 4);
        s.acknowledge(1);
        assert!(s.detach(first.generation));
        s.deliver(&message(4));
        assert_eq!(s.unacked(), [2, 3, 4]);
        let mut second = s.attach();
        let frames = texts(&mut second.frames);
        assert!(frames[0].contains(r#""event":"connected""#), "{frames:?}");
        assert!(frames[0].contains(s.reconnection_token().unwrap()));
        let sequences: Vec<&str> = frames[1..].iter().map(|f| &f[..16]).collect();
        assert_eq!(
            sequences,
            [
                r#"{"sequenceId":2,"#,
                r#"{"sequenceId":3,"#,
                r#"{"sequenceId":4,"#
            ]
        );
        assert!(
            !s.detach(first.generation),
            "an old socket cannot detach the new one"
        );
    }

    #[test]
    fn a_reliable_backlog_past_its_bound_drops_the_session() {
        let s = Session::new(
            "c".into(),
            None,
            Protocol::Reliable,
            Permissions::default(),
            2,
        );
        let a = s.attach();
        assert_eq!(s.deliver(&message(1)), Delivered::Queued);
        assert_eq!(s.deliver(&message(2)), Delivered::Queued);
        assert_eq!(s.deliver(&message(3)), Delivered::Dropped);
        assert!(a.stop.is_cancelled());
        assert_eq!(s.close_reason().0, 1008);
    }

    #[test]
    fn a_plain_client_that_does_not_keep_up_is_closed() {
        let s = Session::new("c".into(), None, Protocol::Json, Permissions::default(), 2);
        let a = s.attach();
        for n in 0..=SOCKET_QUEUE as u32 {
            s.deliver(&message(n));
        }
        assert!(a.stop.is_cancelled());
        assert_eq!(s.close_reason().0, 1011);
    }

    #[test]
    fn roles_grant_what_they_name() {
        let p = Permissions::from_roles(&[
            "webpubsub.joinLeaveGroup.order-1".into(),
            "webpubsub.sendToGroup".into(),
        ]);
        assert!(p.allows(Permission::JoinLeaveGroup, "order-1"));
        assert!(!p.allows(Permission::JoinLeaveGroup, "order-2"));
        assert!(p.allows(Permission::SendToGroup, "anything"));
        assert!(!Permissions::from_roles(&[]).allows(Permission::SendToGroup, "g"));
        let mut p = Permissions::default();
        p.grant(Permission::SendToGroup, Some("g"));
        assert!(p.check(Permission::SendToGroup, Some("g")));
        assert!(!p.check(Permission::SendToGroup, None));
        p.revoke(Permission::SendToGroup, None);
        assert!(!p.check(Permission::SendToGroup, Some("g")));
    }

    #[test]
    fn an_ack_id_is_first_used_once_and_tokens_compare_exactly() {
        let s = Session::new(
            "c".into(),
            None,
            Protocol::Reliable,
            Permissions::default(),
            2,
        );
        assert!(s.first_use_of_ack_id(1));
        assert!(!s.first_use_of_ack_id(1));
        let token = s.reconnection_token().unwrap().to_owned();
        assert!(s.reconnection_token_matches(&token));
        assert!(!s.reconnection_token_matches(&token[1..]));
    }
}
