//! SAS tokens minted by the official SDKs, verified by `ordergrid::eventgrid::sas::verify`.
//!
//! The tokens come from `tests/support/eg_sas.py` (Python `azure.eventgrid.generate_sas`) and
//! `tests/support/eg_sas.mjs` (JS `generateSharedAccessSignature`), so the verifier is held to
//! what the SDKs really send, not to our reading of their source. The two differ in every part
//! but the algorithm (see the module docs of `eventgrid::sas`):
//!
//! ```text
//! python: r=https%3A%2F%2Fh%2Fapi%2Fevents%3FapiVersion%3D2018-01-01&e=2026-11-22%2018%3A33%3A10.659094%2B00%3A00&s=…
//! naive:  r=…same…&e=2026-11-22%2018%3A31%3A10.843906&s=…
//! js:     r=…same…&e=11%2F22%2F2026%206%3A34%3A15%20PM&s=…
//! ```
//!
//! The Python interpreter is `$ORDERGRID_TEST_PYTHON` or the venv `scripts/test-env` builds;
//! that script also installs `tests/support/node_modules` (npm ci), where Node finds
//! `@azure/eventgrid` by resolving from the script's own directory. Keys are random per run and
//! neither keys nor tokens are ever printed.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use ordergrid::eventgrid::sas::{self, SasError, TopicKey};
use ordergrid_testing::{repo_root, test_python};
use time::{Duration, OffsetDateTime};

const ENDPOINT: &str = "https://orders.westus2-1.eventgrid.azure.net/api/events";
const HOST: &str = "orders.westus2-1.eventgrid.azure.net";
const AT_HOST: sas::Target<'static> = sas::Target {
    host: HOST,
    path: "/api/events",
};

/// `tests/support`, with `@azure/eventgrid` installed in its `node_modules`.
fn node_support_dir() -> PathBuf {
    let _ = test_python(); // runs scripts/test-env, which runs npm ci, unless already done
    let dir = repo_root().join("tests/support");
    assert!(
        dir.join("node_modules/@azure/eventgrid/package.json")
            .is_file(),
        "tests/support/node_modules has no @azure/eventgrid; run scripts/test-env"
    );
    dir
}

#[derive(Debug, Clone, Copy)]
enum Sdk {
    /// `generate_sas` with an aware UTC datetime, as `eg_publish.py` uses it.
    Python,
    /// `generate_sas` with a naive UTC datetime (`datetime.utcnow() + …`), no offset in `e`.
    PythonNaiveExpiry,
    Js,
}

const ALL_SDKS: [Sdk; 3] = [Sdk::Python, Sdk::PythonNaiveExpiry, Sdk::Js];

/// A token the SDK mints for `resource`, valid for `expiry_seconds` from now (negative: already
/// expired).
fn sdk_token(sdk: Sdk, resource: &str, key: &TopicKey, expiry_seconds: i64) -> String {
    // `--name=value`: Node's parseArgs would take a separate "-120" for an option.
    let seconds = format!("--expiry-seconds={expiry_seconds}");
    let support = repo_root().join("tests/support");
    let mut cmd = match sdk {
        Sdk::Python | Sdk::PythonNaiveExpiry => {
            let mut cmd = Command::new(test_python());
            cmd.arg(support.join("eg_sas.py"));
            if matches!(sdk, Sdk::PythonNaiveExpiry) {
                cmd.arg("--naive-expiry");
            }
            cmd
        }
        Sdk::Js => {
            let mut cmd = Command::new("node");
            cmd.arg(support.join("eg_sas.mjs"))
                .current_dir(node_support_dir());
            cmd
        }
    };
    let out = cmd
        .args(["--resource", resource, "--key", key.expose_secret()])
        .arg(seconds)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run the {sdk:?} SAS script: {e}"));
    // The token is a secret: on failure report the exit status, never stdout.
    assert!(
        out.status.success(),
        "the {sdk:?} SAS script failed ({}); see its stderr above",
        out.status
    );
    let token = String::from_utf8(out.stdout)
        .expect("SAS script printed non-UTF-8")
        .trim()
        .to_owned();
    assert!(
        token.starts_with("r=") && token.contains("&e=") && token.contains("&s="),
        "the {sdk:?} SAS script printed something that is not a token ({} chars)",
        token.len()
    );
    token
}

#[test]
fn sdk_tokens_verify_with_the_right_key_and_carry_the_sdk_resource_and_expiry() {
    let key = TopicKey::generate();
    for sdk in ALL_SDKS {
        let before = OffsetDateTime::now_utc();
        let token = sdk_token(sdk, ENDPOINT, &key, 3600);
        let now = OffsetDateTime::now_utc();
        let verified = sas::verify(&token, std::slice::from_ref(&key), now, Some(&AT_HOST))
            .unwrap_or_else(|e| panic!("{sdk:?} token refused: {e}"));
        // Both SDKs append a camelCase apiVersion to the endpoint they are given.
        assert_eq!(
            verified.resource(),
            format!("{ENDPOINT}?apiVersion=2018-01-01"),
            "{sdk:?}"
        );
        assert_eq!(verified.key_index(), 0);
        // JS drops sub-seconds, Python keeps microseconds; both are in UTC.
        let expires = verified.expires();
        assert!(
            expires >= before + Duration::seconds(3599) && expires <= now + Duration::seconds(3601),
            "{sdk:?}: expiry {expires} is not about an hour after {before}"
        );
    }
}

#[test]
fn sdk_tokens_are_rejected_with_a_wrong_key() {
    let key = TopicKey::generate();
    let other = TopicKey::generate();
    for sdk in ALL_SDKS {
        let token = sdk_token(sdk, ENDPOINT, &key, 3600);
        let result = sas::verify(
            &token,
            std::slice::from_ref(&other),
            OffsetDateTime::now_utc(),
            None,
        );
        assert_eq!(result, Err(SasError::BadSignature), "{sdk:?}");
    }
}

#[test]
fn sdk_tokens_signed_with_the_second_key_are_accepted() {
    let (primary, secondary) = (TopicKey::generate(), TopicKey::generate());
    for sdk in ALL_SDKS {
        let token = sdk_token(sdk, ENDPOINT, &secondary, 3600);
        let keys = [primary.clone(), secondary.clone()];
        let verified = sas::verify(&token, &keys, OffsetDateTime::now_utc(), Some(&AT_HOST))
            .unwrap_or_else(|e| panic!("{sdk:?} token refused: {e}"));
        assert_eq!(verified.key_index(), 1, "{sdk:?}");
    }
}

#[test]
fn sdk_tokens_minted_already_expired_are_rejected_as_expired() {
    let key = TopicKey::generate();
    for sdk in ALL_SDKS {
        let token = sdk_token(sdk, ENDPOINT, &key, -120);
        let now = OffsetDateTime::now_utc();
        match sas::verify(&token, std::slice::from_ref(&key), now, Some(&AT_HOST)) {
            Err(SasError::Expired { expired_at, .. }) => assert!(
                expired_at < now - Duration::seconds(100),
                "{sdk:?}: expired at {expired_at}, expected about two minutes before {now}"
            ),
            other => panic!("{sdk:?}: expected Expired, got {other:?}"),
        }
    }
}

#[test]
fn sdk_tokens_are_rejected_once_their_expiry_has_passed() {
    let key = TopicKey::generate();
    for sdk in ALL_SDKS {
        let token = sdk_token(sdk, ENDPOINT, &key, 60);
        let keys = std::slice::from_ref(&key);
        let now = OffsetDateTime::now_utc();
        assert!(sas::verify(&token, keys, now, None).is_ok(), "{sdk:?}");
        let later = now + Duration::minutes(2);
        assert!(
            matches!(
                sas::verify(&token, keys, later, None),
                Err(SasError::Expired { .. })
            ),
            "{sdk:?}"
        );
    }
}

/// A token names its topic's endpoint; presented for another topic (by host or
/// by path) it fails, in every SDK's encoding.
#[test]
fn sdk_tokens_for_another_topic_fail_the_resource_check() {
    let key = TopicKey::generate();
    let keys = std::slice::from_ref(&key);
    for (resource, right, wrong) in [
        (
            "http://orders.eventgrid.localhost:7071/api/events",
            ("Orders.EventGrid.localhost:7071", "/api/events"),
            ("billing.eventgrid.localhost:7071", "/api/events"),
        ),
        (
            "http://127.0.0.1:7080/orders/api/events",
            ("localhost:7080", "/orders/api/events"),
            ("127.0.0.1:7080", "/billing/api/events"),
        ),
    ] {
        for sdk in ALL_SDKS {
            let token = sdk_token(sdk, resource, &key, 3600);
            let now = OffsetDateTime::now_utc();
            let at =
                |(host, path)| sas::verify(&token, keys, now, Some(&sas::Target { host, path }));
            assert!(at(right).is_ok(), "{sdk:?}: {:?}", at(right));
            assert!(
                matches!(at(wrong), Err(SasError::WrongResource { .. })),
                "{sdk:?}: {:?}",
                at(wrong)
            );
        }
    }
}
