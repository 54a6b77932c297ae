//! Hubs, their connections, groups and users: who a message goes to.
//!
//! As on Azure, a hub exists once something uses it, a group once a connection is in it, and
//! a user once one of their connections is open; sending to one that does not exist succeeds
//! and reaches nobody (the REST API's fire-and-forget sends).
//!
//! Invariants:
//! - the hub's lock is held only to find recipients and change membership, never while a
//!   message is rendered or a socket written; a message is rendered once for all recipients;
//! - a connection's groups are removed with it, so groups never name a closed connection.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::frames::Prepared;
use super::session::{Delivered, Session};

/// Every hub of the service, created on first use.
#[derive(Default)]
pub struct Hubs {
    hubs: Mutex<HashMap<String, Arc<Hub>>>,
}

impl Hubs {
    pub fn hub(&self, name: &str) -> Arc<Hub> {
        let mut hubs = self.hubs.lock().unwrap_or_else(|e| e.into_inner());
        hubs.entry(name.to_owned()).or_default().clone()
    }

    /// Closes every connection of every hub (the service is stopping).
    pub fn close_all(&self, reason: &str) {
        let hubs: Vec<Arc<Hub>> = self
            .hubs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for hub in hubs {
            hub.close(Target::All, &[], 1001, reason);
        }
    }
}

/// Who a message or a close is for.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    All,
    Group(&'a str),
    User(&'a str),
    Connection(&'a str),
}

struct Member {
    session: Arc<Session>,
    groups: HashSet<String>,
}

#[derive(Default)]
struct Members {
    connections: HashMap<Arc<str>, Member>,
    groups: HashMap<String, HashSet<Arc<str>>>,
    users: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

impl Members {
    fn join(&mut self, id: &Arc<str>, group: &str) -> bool {
        let Some(member) = self.connections.get_mut(id) else {
            return false;
        };
        member.groups.insert(group.to_owned());
        self.groups
            .entry(group.to_owned())
            .or_default()
            .insert(id.clone());
        true
    }

    fn leave(&mut self, id: &str, group: &str) {
        if let Some(member) = self.connections.get_mut(id) {
            member.groups.remove(group);
        }
        if let Some(ids) = self.groups.get_mut(group) {
            ids.remove(id);
            if ids.is_empty() {
                self.groups.remove(group);
            }
        }
    }

    fn ids_of_user(&self, user: &str) -> Vec<Arc<str>> {
        self.users
            .get(user)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn recipients(&self, target: Target<'_>, excluded: &[String]) -> Vec<Arc<Session>> {
        let keep = |s: &&Arc<Session>| !excluded.iter().any(|e| **e == *s.id);
        match target {
            Target::All => self
                .connections
                .values()
                .map(|m| &m.session)
                .filter(keep)
                .cloned()
                .collect(),
            Target::Group(group) => self.sessions(self.groups.get(group), keep),
            Target::User(user) => self.sessions(self.users.get(user), keep),
            Target::Connection(id) => self
                .connections
                .get(id)
                .map(|m| &m.session)
                .filter(keep)
                .cloned()
                .into_iter()
                .collect(),
        }
    }

    fn sessions(
        &self,
        ids: Option<&HashSet<Arc<str>>>,
        keep: impl Fn(&&Arc<Session>) -> bool,
    ) -> Vec<Arc<Session>> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.connections.get(id).map(|m| &m.session))
            .filter(keep)
            .cloned()
            .collect()
    }
}

#[derive(Default)]
pub struct Hub {
    members: Mutex<Members>,
}

impl Hub {
    fn members(&self) -> MutexGuard<'_, Members> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection, in `groups` (its token's `webpubsub.group` claims).
    pub fn add(&self, session: Arc<Session>, groups: &[String]) {
        let mut m = self.members();
        let id = session.id.clone();
        if let Some(user) = &session.user {
            m.users.entry(user.clone()).or_default().insert(id.clone());
        }
        m.connections.insert(
            id.clone(),
            Member {
                session,
                groups: HashSet::new(),
            },
        );
        for group in groups {
            m.join(&id, group);
        }
    }

    /// Removes a connection from the hub, its groups and its user.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let mut m = self.members();
        let member = m.connections.remove(id)?;
        for group in &member.groups {
            if let Some(ids) = m.groups.get_mut(group) {
                ids.remove(id);
                if ids.is_empty() {
                    m.groups.remove(group);
                }
            }
        }
        if let Some(user) = &member.session.user
            && let Some(ids) = m.users.get_mut(user)
        {
            ids.remove(id);
            if ids.is_empty() {
                m.users.remove(user);
            }
        }
        Some(member.session)
    }

    pub fn connection(&self, id: &str) -> Option<Arc<Session>> {
        self.members()
            .connections
            .get(id)
            .map(|m| m.session.clone())
    }

    /// False when there is no such connection.
    pub fn join(&self, id: &str, group: &str) -> bool {
        let mut m = self.members();
        let Some(id) = m.connections.get_key_value(id).map(|(k, _)| k.clone()) else {
            return false;
        };
        m.join(&id, group)
    }

    pub fn leave(&self, id: &str, group: &str) {
        self.members().leave(id, group);
    }

    /// Removes a connection from every group it is in.
    pub fn leave_all(&self, id: &str) {
        let mut m = self.members();
        let groups: Vec<String> = m
            .connections
            .get(id)
            .map(|member| member.groups.iter().cloned().collect())
            .unwrap_or_default();
        for group in groups {
            m.leave(id, &group);
        }
    }

    /// Adds every connection `user` has now to `group`. Whether Azure also adds the user's
    /// later connections is not documented; here it does not.
    pub fn add_user_to_group(&self, user: &str, group: &str) {
        let mut m = self.members();
        for id in m.ids_of_user(user) {
            m.join(&id, group);
        }
    }

    /// Removes `user`'s connections from `group`, or from every group when `None`.
    pub fn remove_user_from_group(&self, user: &str, group: Option<&str>) {
        let mut m = self.members();
        for id in m.ids_of_user(user) {
            let groups: Vec<String> = match group {
                Some(g) => vec![g.to_owned()],
                None => m
                    .connections
                    .get(&id)
                    .map(|member| member.groups.iter().cloned().collect())
                    .unwrap_or_default(),
            };
            for g in groups {
                m.leave(&id, &g);
            }
        }
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.members().groups.contains_key(group)
    }

    pub fn has_user(&self, user: &str) -> bool {
        self.members().users.contains_key(user)
    }

    /// The connections in `group` with their users.
    pub fn group_connections(&self, group: &str) -> Vec<(Arc<str>, Option<Arc<str>>)> {
        let m = self.members();
        m.sessions(m.groups.get(group), |_| true)
            .into_iter()
            .map(|s| (s.id.clone(), s.user.clone()))
            .collect()
    }

    #[cfg(test)]
    fn connection_count(&self) -> usize {
        self.members().connections.len()
    }

    /// Delivers `message` to every connection `target` names except `excluded`; returns how
    /// many it reached.
    pub fn send(&self, target: Target<'_>, excluded: &[String], message: &Prepared) -> usize {
        let recipients = self.members().recipients(target, excluded);
        for session in &recipients {
            if session.deliver(message) == Delivered::Dropped {
                self.remove(&session.id);
            }
        }
        recipients.len()
    }

    /// Closes every connection `target` names except `excluded`, for good: a reliable client
    /// cannot reconnect to it.
    pub fn close(&self, target: Target<'_>, excluded: &[String], code: u16, reason: &str) {
        let recipients = self.members().recipients(target, excluded);
        for session in recipients {
            self.remove(&session.id);
            session.close(code, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webpubsub::actions::DataType;
    use crate::webpubsub_service::frames::{Origin, Protocol};
    use crate::webpubsub_service::session::Permissions;
    use bytes::Bytes;

    fn session(id: &str, user: Option<&str>) -> Arc<Session> {
        Arc::new(Session::new(
            id.into(),
            user.map(Into::into),
            Protocol::Json,
            Permissions::default(),
            10,
        ))
    }

    #[test]
    fn groups_users_and_exclusions_pick_the_recipients() {
        let hub = Hub::default();
        let (a, b, c) = (
            session("a", Some("ann")),
            session("b", Some("ann")),
            session("c", None),
        );
        let mut sockets: Vec<_> = [&a, &b, &c].iter().map(|s| s.attach()).collect();
        hub.add(a.clone(), &["g".into()]);
        hub.add(b.clone(), &[]);
        hub.add(c.clone(), &["g".into()]);
        let m = Prepared::new(Origin::Server, &Bytes::from_static(b"1"), DataType::Json);
        assert_eq!(hub.send(Target::Group("g"), &[], &m), 2);
        assert_eq!(hub.send(Target::Group("g"), &["c".into()], &m), 1);
        assert_eq!(hub.send(Target::User("ann"), &[], &m), 2);
        assert_eq!(hub.send(Target::All, &[], &m), 3);
        assert_eq!(hub.send(Target::Group("nobody"), &[], &m), 0);
        hub.add_user_to_group("ann", "h");
        assert_eq!(hub.send(Target::Group("h"), &[], &m), 2);
        hub.remove_user_from_group("ann", None);
        assert!(!hub.has_group("h"));
        assert_eq!(hub.send(Target::Group("g"), &[], &m), 1);
        hub.remove("c");
        assert!(!hub.has_group("g"), "a closed connection leaves its groups");
        assert!(hub.has_user("ann"));
        hub.close(Target::User("ann"), &[], 1000, "bye");
        assert!(!hub.has_user("ann") && hub.connection_count() == 0);
        assert!(sockets.iter_mut().take(2).all(|s| s.stop.is_cancelled()));
    }
}
