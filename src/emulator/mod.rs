//! A local Azure Event Grid: the seed's Flask broker done properly.
//!
//! (Work in progress: assembled module by module.)

pub mod filter;
pub mod subscriptions;
