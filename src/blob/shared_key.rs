//! SharedKey authorization for Blob Storage, as a per-try policy on the `azure_core` pipeline.
//!
//! `azure_storage_blob` 1.x only signs in with Microsoft Entra ID; Azurite and accounts used
//! with an account key need the classic scheme
//! (<https://learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key>):
//!
//! ```text
//! Authorization: SharedKey <account>:base64(HMAC-SHA256(key, string-to-sign))
//! string-to-sign = VERB \n Content-Encoding \n Content-Language \n Content-Length (empty if 0) \n
//!                  Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match \n
//!                  If-None-Match \n If-Unmodified-Since \n Range \n
//!                  canonicalized x-ms-* headers (lower-case, sorted, `name:value\n`)
//!                  canonicalized resource (`/<account><path>` + `\nname:v1,v2` per query parameter)
//! ```
//! It runs per try (after the retry policy), so every retry carries a fresh `x-ms-date` and a
//! signature over exactly the headers that go on the wire. The key never leaves this module.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::http::headers::HeaderName;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::connection::AccountKey;

#[derive(Debug)]
pub(super) struct SharedKeyPolicy {
    account: String,
    key: AccountKey,
}

impl SharedKeyPolicy {
    pub(super) fn new(account: String, key: AccountKey) -> Self {
        Self { account, key }
    }

    fn sign(&self, string_to_sign: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.bytes())
            .expect("HMAC takes keys of any length");
        mac.update(string_to_sign.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }
}

#[async_trait]
impl Policy for SharedKeyPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        request.insert_header(
            HeaderName::from_static("x-ms-date"),
            azure_core::time::to_rfc7231(&azure_core::time::OffsetDateTime::now_utc()),
        );
        let signature = self.sign(&string_to_sign(&self.account, request));
        request.insert_header(
            HeaderName::from_static("authorization"),
            format!("SharedKey {}:{signature}", self.account),
        );
        next[0].send(ctx, request, &next[1..]).await
    }
}

fn string_to_sign(account: &str, request: &Request) -> String {
    let headers = request.headers();
    let header = |name: &'static str| {
        headers
            .get_optional_str(&HeaderName::from_static(name))
            .unwrap_or("")
            .to_owned()
    };
    // The transport sends Content-Length from the body; version 2015-02-21 and later sign an
    // empty string for a zero length.
    let length = match headers.get_optional_str(&HeaderName::from_static("content-length")) {
        Some(len) => len.to_owned(),
        None => request.body().len().unwrap_or(0).to_string(),
    };
    let length = if length == "0" { String::new() } else { length };
    let mut out = format!(
        "{}\n{}\n{}\n{length}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
        request.method().as_ref().to_ascii_uppercase(),
        header("content-encoding"),
        header("content-language"),
        header("content-md5"),
        header("content-type"),
        header("date"),
        header("if-modified-since"),
        header("if-match"),
        header("if-none-match"),
        header("if-unmodified-since"),
        header("range"),
    );
    let mut ms_headers: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("x-ms-"))
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                value.as_str().trim().to_owned(),
            )
        })
        .collect();
    ms_headers.sort();
    for (name, value) in ms_headers {
        out.push_str(&name);
        out.push(':');
        out.push_str(&value);
        out.push('\n');
    }
    let url = request.url();
    out.push('/');
    out.push_str(account);
    out.push_str(url.path());
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        query
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(value.into_owned());
    }
    for (name, mut values) in query {
        values.sort();
        out.push('\n');
        out.push_str(&name);
        out.push(':');
        out.push_str(&values.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{Method, Url};

    #[test]
    fn the_string_to_sign_follows_the_documented_layout() {
        let mut request = Request::new(
            Url::parse("http://127.0.0.1:10000/devstoreaccount1/orders?restype=container&comp=list&prefix=a")
                .unwrap(),
            Method::Get,
        );
        request.insert_header("x-ms-version", "2026-04-06");
        request.insert_header("x-ms-date", "Sun, 22 Nov 2026 10:00:00 GMT");
        request.insert_header("if-none-match", "*");
        assert_eq!(
            string_to_sign("devstoreaccount1", &request),
            "GET\n\n\n\n\n\n\n\n\n*\n\n\n\
             x-ms-date:Sun, 22 Nov 2026 10:00:00 GMT\nx-ms-version:2026-04-06\n\
             /devstoreaccount1/devstoreaccount1/orders\ncomp:list\nprefix:a\nrestype:container"
        );
    }

    #[test]
    fn a_body_length_is_signed_and_a_zero_length_is_not() {
        let url = Url::parse("https://acct.blob.core.windows.net/orders/1").unwrap();
        let mut request = Request::new(url.clone(), Method::Put);
        request.set_body(azure_core::Bytes::from_static(b"{}"));
        assert!(string_to_sign("acct", &request).starts_with("PUT\n\n\n2\n"));
        let request = Request::new(url, Method::Put);
        assert!(string_to_sign("acct", &request).starts_with("PUT\n\n\n\n"));
    }
}
