//! Black-box tests of the Event Grid emulator: the real emulator on port 0 (in-process,
//! or the real binary for the crash and CLI tests), real receivers, the official SDKs.
//!
//! Every test writes its own subscriptions file pointing at an
//! [`ordergrid_testing::receiver::Receiver`] it controls,
//! runs with Azure's durations scaled down (`time_scale`), and waits by polling with a deadline,
//! never by sleeping.

mod admin;
mod auth;
mod crash;
mod dashboard;
mod dead_letter;
mod delivery;
mod entra;
mod handshake;
mod harness;
mod hostile;
mod memory;
mod no_loss;
mod publish;
mod publish_cli;
mod retry;
mod sdk;
mod slow_clients;
