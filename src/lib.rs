//! ordergrid: the event-driven order pipeline of seed 004, made real on Azure.
//!
//! One binary, four wings, none of which imports another:
//! - [`functions`]: the Azure Functions custom handler serving `OrderProcessor` and
//!   `EmailNotifier` (Event Grid triggers), the choreography `NewOrder` → `OrderAccepted` |
//!   `OrderRejected` → `OrderConfirmationSent` | `OrderConfirmationFailed`, and the live feed of
//!   it through Web PubSub (`OrderStatusFeed`, `negotiate`, `orderStatus`, the `web` pages);
//! - [`emulator`]: a local Azure Event Grid: the publish API, a durable spool, delivery with
//!   Azure's retries and dead letters, validation handshakes, the admin API;
//! - [`devhost`]: a stand-in for the Functions host that reads the real `host.json` and
//!   `function.json` and runs the handler as the host does, its HTTP triggers and Web PubSub
//!   bindings too;
//! - [`webpubsub_service`]: a local Azure Web PubSub service: the client endpoint with its
//!   subprotocols and the REST data plane.
//!
//! Above them, what composes them: [`stack`] (`ordergrid dev`: all four, wired) and [`cli`]
//! (the command line, including `publish`, `webpubsub` and the read-only `orders` and
//! `emulator …`).
//!
//! Below them, a ground floor that imports nothing of the wings:
//! - wire formats, each modelled once: [`eventgrid`] (Event Grid and CloudEvents events, protocol
//!   names, SAS tokens, the publisher client), [`webpubsub`] (connection strings, access tokens,
//!   output-binding actions, the REST client), [`invocation`] (the custom handler's request and
//!   answer), [`json`] (JSON whose numbers stay text);
//! - the domain: [`domain`] (orders, money, ids, email addresses);
//! - side effects behind interfaces with in-memory twins: [`store`] (records with conditional
//!   writes), [`email`] (rendering and transports), [`blob`] (Blob Storage connections), and
//!   [`journal`] (the segmented, group-committed log under the store and the spool);
//! - [`settings`] (the reader every wing declares its settings with), [`http_server`] (how every
//!   local server serves HTTP, with timeouts and a connection cap), [`telemetry`] (logging),
//!   [`trace`] (W3C trace context, OpenTelemetry spans, OTLP), [`local_guard`] (what every local
//!   server refuses from hostile web pages) and [`shutdown`] (signals).
//!
//! See `ARCHITECTURE.md` for the flows and invariants.

#![forbid(unsafe_code)]

pub mod blob;
pub mod cli;
pub mod devhost;
pub mod domain;
pub mod email;
pub mod emulator;
pub mod eventgrid;
pub mod functions;
#[doc(hidden)]
pub mod fuzzing;
pub mod http_server;
pub mod invocation;
pub mod journal;
pub mod json;
pub mod local_guard;
pub mod settings;
pub mod shutdown;
pub mod stack;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod webpubsub;
pub mod webpubsub_service;
