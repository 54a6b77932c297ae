//! What happens after a failed attempt: Azure's retry schedule and failure classes, as pure
//! functions of the attempt number, the answer, and a jitter draw.
//!
//! - Schedule (waits before attempt 2, 3, …): 10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h, 6 h,
//!   then every 12 h; each wait gets up to 10 % of random extra ("Event Grid adds a small
//!   randomization to all retry steps").
//! - Never retried: 400, 413, 403, and 401 for webhooks. These end delivery at once.
//! - Minimum waits: 503 → 30 s, 408 → 2 min, 404 (and 401) → 5 min for Azure-resource
//!   destinations (an Azure Function). Other failures, timeouts and connection errors use the
//!   schedule.
//! - Delivery ends at `maxDeliveryAttempts`, or at the event's time to live, which is checked only
//!   when the next attempt is due (Azure: "checked ONLY at the next scheduled delivery attempt").
//!
//! All durations are Azure's; the caller scales them (`time scale`) for fast local runs.

use std::time::Duration;

/// Waits before the 2nd, 3rd, … attempt; after the last entry, every 12 hours.
pub const SCHEDULE: [Duration; 9] = [
    Duration::from_secs(10),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(5 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
    Duration::from_secs(3 * 60 * 60),
    Duration::from_secs(6 * 60 * 60),
];
const THEN_EVERY: Duration = Duration::from_secs(12 * 60 * 60);

/// How an attempt went, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The endpoint answered with this non-success status.
    Status(u16),
    /// No answer within the delivery timeout.
    Timeout,
    /// No connection (refused, reset, DNS).
    Connection,
}

/// What the destination is, since a few rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointKind {
    WebHook,
    /// An Azure resource (the Functions host's Event Grid endpoint).
    AzureResource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Try again after this (unscaled) wait.
    RetryAfter(Duration),
    /// Stop; `reason` is the dead-letter reason.
    GiveUp(&'static str),
}

pub const REASON_MAX_ATTEMPTS: &str = "MaxDeliveryAttemptsExceeded";
pub const REASON_TTL: &str = "TimeToLiveExceeded";
/// Used when a non-retryable answer ends delivery. Azure's exact name is not documented.
pub const REASON_NON_RETRYABLE: &str = "NonRetriableError";
/// Ours, not Azure's: a stored event whose body cannot be parsed. The publish API accepts only
/// what parses, so only a spool written by an older ordergrid can hold one.
pub const REASON_UNREADABLE: &str = "UnreadableEvent";

/// Success is 200–204 only (202 is what the Functions host answers).
pub fn is_success(status: u16) -> bool {
    (200..=204).contains(&status)
}

/// Decides what follows a failed attempt. `attempts` counts attempts made so far, including the
/// failed one; `jitter` is a draw from `[0, 1)`.
pub fn after_failure(
    failure: Failure,
    endpoint: EndpointKind,
    attempts: u32,
    max_attempts: u32,
    jitter: f64,
) -> Decision {
    if let Failure::Status(status) = failure {
        let never_retried = matches!(status, 400 | 403 | 413)
            || (status == 401 && endpoint == EndpointKind::WebHook);
        if never_retried {
            return Decision::GiveUp(REASON_NON_RETRYABLE);
        }
    }
    if attempts >= max_attempts {
        return Decision::GiveUp(REASON_MAX_ATTEMPTS);
    }
    let scheduled = SCHEDULE
        .get(attempts.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(THEN_EVERY);
    let minimum = match (failure, endpoint) {
        (Failure::Status(503), _) => Duration::from_secs(30),
        (Failure::Status(408), _) => Duration::from_secs(2 * 60),
        (Failure::Status(404 | 401), EndpointKind::AzureResource) => Duration::from_secs(5 * 60),
        _ => Duration::ZERO,
    };
    let wait = scheduled.max(minimum);
    Decision::RetryAfter(wait.mul_f64(1.0 + 0.1 * jitter.clamp(0.0, 1.0)))
}

/// Event Grid's `lastDeliveryOutcome` for an attempt's result.
pub fn outcome_name(failure: Option<Failure>) -> &'static str {
    match failure {
        None => "Delivered",
        Some(Failure::Timeout) => "TimedOut",
        Some(Failure::Connection) => "SocketError",
        Some(Failure::Status(status)) => match status {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            413 => "PayloadTooLarge",
            408 => "TimedOut",
            429 | 503 => "Busy",
            _ => "GenericError",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use EndpointKind::*;
    use Failure::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn follows_azures_schedule_then_every_twelve_hours() {
        let waits: Vec<Decision> = (1..=12)
            .map(|n| after_failure(Status(500), WebHook, n, 30, 0.0))
            .collect();
        let expected = [
            10,
            30,
            60,
            300,
            600,
            1800,
            3600,
            3 * 3600,
            6 * 3600,
            12 * 3600,
            12 * 3600,
            12 * 3600,
        ];
        assert_eq!(waits, expected.map(|s| RetryAfter(secs(s))));
    }

    #[test]
    fn jitter_adds_at_most_ten_percent() {
        let RetryAfter(most) = after_failure(Timeout, WebHook, 1, 30, 0.999_999) else {
            panic!("a timeout is retried")
        };
        assert!(most > secs(10) && most < secs(11), "{most:?}");
        assert_eq!(
            after_failure(Connection, WebHook, 1, 30, 0.5),
            RetryAfter(Duration::from_millis(10_500))
        );
        assert_eq!(
            after_failure(Connection, WebHook, 1, 30, 0.0),
            RetryAfter(secs(10))
        );
    }

    #[test]
    fn some_answers_are_never_retried() {
        for status in [400, 403, 413] {
            for endpoint in [WebHook, AzureResource] {
                assert_eq!(
                    after_failure(Status(status), endpoint, 1, 30, 0.0),
                    GiveUp(REASON_NON_RETRYABLE)
                );
            }
        }
        assert_eq!(
            after_failure(Status(401), WebHook, 1, 30, 0.0),
            GiveUp(REASON_NON_RETRYABLE)
        );
        assert_eq!(
            after_failure(Status(401), AzureResource, 1, 30, 0.0),
            RetryAfter(secs(300))
        );
    }

    #[test]
    fn some_answers_wait_at_least_azures_minimum() {
        assert_eq!(
            after_failure(Status(503), WebHook, 1, 30, 0.0),
            RetryAfter(secs(30))
        );
        assert_eq!(
            after_failure(Status(408), WebHook, 1, 30, 0.0),
            RetryAfter(secs(120))
        );
        assert_eq!(
            after_failure(Status(404), AzureResource, 1, 30, 0.0),
            RetryAfter(secs(300))
        );
        assert_eq!(
            after_failure(Status(404), WebHook, 1, 30, 0.0),
            RetryAfter(secs(10))
        );
        // Later in the schedule the scheduled wait is longer than the minimum.
        assert_eq!(
            after_failure(Status(503), WebHook, 5, 30, 0.0),
            RetryAfter(secs(600))
        );
    }

    #[test]
    fn delivery_ends_after_max_attempts() {
        assert_eq!(
            after_failure(Status(500), WebHook, 3, 3, 0.0),
            GiveUp(REASON_MAX_ATTEMPTS)
        );
        assert_eq!(
            after_failure(Status(500), WebHook, 1, 1, 0.0),
            GiveUp(REASON_MAX_ATTEMPTS)
        );
        assert!(matches!(
            after_failure(Status(500), WebHook, 2, 3, 0.0),
            RetryAfter(_)
        ));
    }

    #[test]
    fn success_is_200_to_204() {
        assert!((200..=204).all(is_success));
        assert!(!is_success(205) && !is_success(199) && !is_success(302));
    }
}
