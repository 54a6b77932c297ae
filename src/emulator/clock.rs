//! Wall-clock time as the emulator records it: milliseconds since the Unix epoch (publish
//! times, due times) and RFC 3339 for people and the admin API. Delivery's state machine takes
//! the time as an argument; only the publish API and the dispatchers read the clock.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `ms` (since the Unix epoch) as RFC 3339, or empty if out of range.
pub fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}
