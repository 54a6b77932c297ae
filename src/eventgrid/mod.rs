//! The Event Grid wire formats both worlds share: the Event Grid schema, CloudEvents 1.0, and a
//! normalised [`InboundEvent`] view that handlers work with whichever schema delivered it.
//!
//! This module imports nothing else of ordergrid's.

mod event;
pub mod protocol;
pub mod publisher;
pub mod sas;

pub use event::{
    CloudEvent, EventError, EventGridEvent, InboundEvent, RawObject, Schema, now_rfc3339,
};
