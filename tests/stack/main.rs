//! The local stack end to end, started the way the README starts it (`ordergrid dev`), driven by
//! the README's own commands, the seed's curl payload and an official Event Grid SDK.

mod blob;
mod choreography;
mod cli;
mod dashboard;
mod entra;
mod full_disk;
mod helpers;
mod hostile;
mod live_feed;
mod node;
mod readme;
mod resilience;
mod torture;
mod traces;
