//! ordergrid: the event-driven order pipeline of seed 004, made real on Azure.
//!
//! One binary, several wings:
//! - [`functions`]: the Azure Functions custom handler serving `OrderProcessor` and
//!   `EmailNotifier` (Event Grid triggers);
//!
//! on a ground floor that imports nothing of ours: [`domain`] (orders, money, ids, emails) and
//! [`eventgrid`] (the wire formats), plus the side-effect interfaces [`store`] and [`email`], and
//! [`blob`] (Blob Storage connections, shared by the blob store and the emulator's dead letters).
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
pub mod invocation;
pub mod journal;
pub mod json;
pub mod settings;
pub mod shutdown;
pub mod stack;
pub mod store;
pub mod telemetry;
