//! The order domain: types that can only hold valid values.
//!
//! Raw strings and JSON stop at the edge; everything past [`NewOrder::parse`] works with these
//! newtypes, whose fields are private so an invalid value cannot be constructed.
//!
//! Invariants:
//! - money is a [`rust_decimal::Decimal`] with an ISO 4217 currency, never a float, and never has
//!   more decimal places than the currency's minor unit;
//! - ids are non-empty, at most [`Identifier::MAX_LEN`] characters of a storage-safe alphabet, so
//!   they can be used as file names and blob names unchanged;
//! - an email address is syntactically valid (parsed by lettre, the crate that sends it).
//!
//! This module imports nothing else of ordergrid's.

mod currency;
mod email;
mod id;
mod money;
mod order;

pub use currency::Currency;
pub use email::EmailAddress;
pub use id::{CustomerId, Identifier, OrderId, Sku};
pub use money::{Money, MoneyError};
pub use order::{NewOrder, OrderItem, OrderLimits, Rejection, RejectionReason};
