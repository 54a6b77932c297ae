//! Black-box tests of the custom handler (`ordergrid serve`): the real app (or binary) on port 0, real components around it.

mod binary;
mod blob;
mod crash;
mod email_notifier;
mod events;
mod helpers;
mod idempotency;
mod invocation;
mod manifest;
mod negotiate;
mod order_processor;
mod order_status;
mod smtp;
mod status_feed;
mod store;
mod web;
