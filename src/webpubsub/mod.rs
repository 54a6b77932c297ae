//! Azure Web PubSub's wire formats, on the ground floor like [`crate::eventgrid`]: shared by the
//! functions (the status feed and negotiate), the host stand-in (the `webPubSub` output and
//! `webPubSubConnection` input bindings) and the local service.
//!
//! - [`connection`]: connection strings and identity-based connections, as the Functions
//!   extension reads them;
//! - [`token`]: client and REST access tokens (HS256 over the access key);
//! - [`actions`]: the output binding's actions, as the extension parses them;
//! - [`client`]: the REST data plane client.
//!
//! This module imports nothing else of ordergrid's.

pub mod actions;
pub mod client;
pub mod connection;
pub mod token;

pub use client::{ServiceError, TokenRequest, WebPubSubClient};
pub use connection::{DEFAULT_CONNECTION_SETTING, WebPubSubConnection};
pub use token::AccessKey;
