//! Azure Blob Storage: one place that turns connection settings into `azure_storage_blob`
//! clients, for the blob store (`store::BlobStore`) and the emulator's blob dead-letter sink.
//!
//! - [`BlobConnection`] is the parsed setting (connection string, or identity-based
//!   `__blobServiceUri`); see `connection`.
//! - [`BlobAccount`] holds the SDK's service client, with the pipeline every request runs
//!   through: the SDK's retries (408, 429, 500, 502, 503, 504, I/O errors; honouring
//!   `retry-after`), a per-try timeout, and the sign-in: SharedKey signing (`shared_key`) for an
//!   account key, or a Microsoft Entra ID bearer token for an identity.
//! - [`describe`] and [`Failure`] classify SDK errors for messages and for callers' decisions.
//!
//! Invariants: keys are held decoded inside the signing policy and never formatted; an identity
//! only ever talks https (the SDK refuses otherwise); errors are logged with `Display`, never
//! `Debug` (which carries a backtrace and the raw response).

mod connection;
mod shared_key;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{ClientOptions, Context, ExponentialRetryOptions, Request, RetryOptions};
use azure_storage_blob::{BlobContainerClient, BlobServiceClient, BlobServiceClientOptions};

pub use connection::{AccountKey, BlobAuth, BlobConnection, DEVSTORE_ACCOUNT};

/// Timing of requests to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobTiming {
    /// How long one try may take before it is abandoned (and retried).
    pub try_timeout: Duration,
    /// Retries after the first try, with exponential backoff from 200 ms (at most 2 s apart).
    pub max_retries: u32,
}

impl Default for BlobTiming {
    fn default() -> Self {
        Self {
            try_timeout: Duration::from_secs(10),
            max_retries: 3,
        }
    }
}

/// A Blob Storage account, ready to make clients for its containers.
pub struct BlobAccount {
    service: BlobServiceClient,
    description: String,
}

impl std::fmt::Debug for BlobAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("BlobAccount")
            .field(&self.description)
            .finish()
    }
}

impl BlobAccount {
    /// Builds the clients; makes no request (a credential is only asked for a token on first use).
    pub fn new(connection: &BlobConnection, timing: BlobTiming) -> Result<Self, String> {
        let mut per_try: Vec<Arc<dyn Policy>> = vec![Arc::new(TimeoutPolicy(timing.try_timeout))];
        let credential: Option<Arc<dyn TokenCredential>> = match connection.auth() {
            BlobAuth::SharedKey { account, key } => {
                per_try.push(Arc::new(shared_key::SharedKeyPolicy::new(
                    account.clone(),
                    key.clone(),
                )));
                None
            }
            BlobAuth::ManagedIdentity { client_id } => {
                let options = azure_identity::ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id
                        .clone()
                        .map(azure_identity::UserAssignedId::ClientId),
                    ..Default::default()
                };
                Some(
                    azure_identity::ManagedIdentityCredential::new(Some(options))
                        .map_err(|e| format!("failed to set up the managed identity: {e}"))?,
                )
            }
            BlobAuth::DeveloperTools => Some(
                azure_identity::DeveloperToolsCredential::new(None).map_err(|e| {
                    format!(
                        "failed to set up developer credentials (az login / azd auth login): {e}"
                    )
                })?,
            ),
        };
        let retry = RetryOptions::exponential(ExponentialRetryOptions {
            initial_delay: azure_core::time::Duration::milliseconds(200),
            max_retries: timing.max_retries,
            max_delay: azure_core::time::Duration::seconds(2),
            max_total_elapsed: azure_core::time::Duration::try_from(
                timing.try_timeout * (timing.max_retries + 1) + Duration::from_secs(10),
            )
            .unwrap_or(azure_core::time::Duration::seconds(60)),
        });
        let options = BlobServiceClientOptions {
            client_options: ClientOptions {
                per_try_policies: per_try,
                retry,
                ..Default::default()
            },
            ..Default::default()
        };
        let service =
            BlobServiceClient::new(connection.service_url().clone(), credential, Some(options))
                .map_err(|e| {
                    format!(
                        "cannot use the blob endpoint {}: {e}",
                        connection.service_url()
                    )
                })?;
        Ok(Self {
            service,
            description: connection.describe(),
        })
    }

    pub fn container(&self, name: &str) -> BlobContainerClient {
        self.service.blob_container_client(name)
    }

    /// Creates the container unless it exists.
    pub async fn ensure_container(&self, name: &str) -> Result<(), azure_core::Error> {
        match self.container(name).create(None).await {
            Ok(_) => Ok(()),
            Err(e) if Failure::of(&e) == Failure::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The endpoint and the kind of sign-in, for logs.
    pub fn describe(&self) -> &str {
        &self.description
    }
}

/// What an SDK error means to a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 404 BlobNotFound.
    BlobNotFound,
    /// 404 ContainerNotFound.
    ContainerNotFound,
    /// 409 BlobAlreadyExists / ContainerAlreadyExists (a create found the name taken).
    AlreadyExists,
    /// 412 ConditionNotMet: an If-Match / If-None-Match precondition failed.
    PreconditionFailed,
    /// Anything else: throttling, timeouts, an unreachable endpoint, refused authorization…
    Other,
}

impl Failure {
    pub fn of(error: &azure_core::Error) -> Self {
        let ErrorKind::HttpResponse {
            status, error_code, ..
        } = error.kind()
        else {
            return Failure::Other;
        };
        let code = error_code.as_deref().unwrap_or("");
        match u16::from(*status) {
            404 if code == "ContainerNotFound" => Failure::ContainerNotFound,
            404 => Failure::BlobNotFound,
            409 if code.ends_with("AlreadyExists") => Failure::AlreadyExists,
            412 => Failure::PreconditionFailed,
            _ => Failure::Other,
        }
    }
}

/// A one-line description of an SDK error, with a hint for the usual causes. Never includes a
/// key: requests carry none in their URLs, and the raw response is not shown.
pub fn describe(error: &azure_core::Error) -> String {
    match error.kind() {
        ErrorKind::HttpResponse {
            status, error_code, ..
        } => {
            let code = error_code.as_deref().unwrap_or("");
            let hint = match u16::from(*status) {
                429 | 503 => "; the account is throttling requests (retried later)",
                500 | 502 | 504 => "; the service had a transient failure (retried later)",
                401 | 403 => {
                    "; check the account key, or that the identity has the Storage Blob Data \
                     Contributor role on the account"
                }
                _ => "",
            };
            format!("the service answered {} {code}{hint}", u16::from(*status))
        }
        ErrorKind::Io | ErrorKind::Connection => {
            format!("the account did not answer ({error}); is it reachable (Azurite running)?")
        }
        ErrorKind::Credential => format!("could not get a token to sign in: {error}"),
        _ => error.to_string(),
    }
}

/// Abandons a try that takes longer than the timeout, as an I/O error, which the retry policy
/// (it runs before this one) retries.
#[derive(Debug)]
struct TimeoutPolicy(Duration);

#[async_trait]
impl Policy for TimeoutPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        match tokio::time::timeout(self.0, next[0].send(ctx, request, &next[1..])).await {
            Ok(result) => result,
            Err(_) => Err(azure_core::Error::with_message(
                ErrorKind::Io,
                format!("no answer within {:?}", self.0),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::StatusCode;

    fn http(status: StatusCode, code: &str) -> azure_core::Error {
        ErrorKind::HttpResponse {
            status,
            error_code: Some(code.into()),
            raw_response: None,
        }
        .into_error()
    }

    #[test]
    fn service_answers_are_classified_by_status_and_code() {
        for (error, failure) in [
            (
                http(StatusCode::NotFound, "BlobNotFound"),
                Failure::BlobNotFound,
            ),
            (
                http(StatusCode::NotFound, "ContainerNotFound"),
                Failure::ContainerNotFound,
            ),
            (
                http(StatusCode::Conflict, "BlobAlreadyExists"),
                Failure::AlreadyExists,
            ),
            (
                http(StatusCode::Conflict, "ContainerAlreadyExists"),
                Failure::AlreadyExists,
            ),
            (http(StatusCode::Conflict, "LeaseIdMissing"), Failure::Other),
            (
                http(StatusCode::PreconditionFailed, "ConditionNotMet"),
                Failure::PreconditionFailed,
            ),
            (
                http(StatusCode::TooManyRequests, "ServerBusy"),
                Failure::Other,
            ),
            (
                azure_core::Error::with_message(ErrorKind::Io, "connection refused"),
                Failure::Other,
            ),
        ] {
            assert_eq!(Failure::of(&error), failure, "{error}");
        }
    }

    #[test]
    fn descriptions_say_what_to_check() {
        assert!(
            describe(&http(StatusCode::ServiceUnavailable, "ServerBusy"))
                .contains("503 ServerBusy; the account is throttling")
        );
        assert!(describe(&http(StatusCode::Forbidden, "AuthorizationFailure")).contains("role"));
        assert!(
            describe(&azure_core::Error::with_message(
                ErrorKind::Connection,
                "connection refused"
            ))
            .contains("Azurite running")
        );
    }
}
