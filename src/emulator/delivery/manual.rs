//! Manual validation: an endpoint that answers the validation event without the code is
//! validated by a `GET` on the event's `validationUrl` within 5 minutes (Event Grid serves it on
//! port 553; here, on the emulator's port), carrying the code and a token.

use subtle::ConstantTimeEq;

use super::{SubscriptionRuntime, Validation};

/// A manual validation in progress: the code and token the validation URL carries.
#[derive(Debug, Clone)]
pub struct ManualValidation {
    pub code: String,
    pub token: String,
}

/// Why a `validationUrl` GET did not validate the subscription.
#[derive(Debug, thiserror::Error)]
pub enum ManualValidationError {
    #[error("subscription {0} is not awaiting manual validation")]
    NotAwaiting(String),
    #[error("the validation id or token does not match")]
    Mismatch,
}

/// Completes a manual validation from the `validationUrl` GET.
pub fn complete_manual(
    rt: &SubscriptionRuntime,
    id: &str,
    token: &str,
) -> Result<(), ManualValidationError> {
    if !matches!(
        *rt.validation.borrow(),
        Validation::AwaitingManualAction { .. }
    ) {
        return Err(ManualValidationError::NotAwaiting(
            rt.subscription.name.to_string(),
        ));
    }
    let expected = rt.manual.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match expected {
        Some(m)
            if constant_time_eq(m.code.as_bytes(), id.as_bytes())
                && constant_time_eq(m.token.as_bytes(), token.as_bytes()) =>
        {
            rt.validation.send_replace(Validation::Succeeded);
            tracing::info!(subscription = %rt.key, "endpoint validated manually");
            Ok(())
        }
        _ => Err(ManualValidationError::Mismatch),
    }
}

/// Constant-time comparison of short secrets (validation codes and tokens).
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}
