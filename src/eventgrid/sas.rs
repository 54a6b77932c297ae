//! Event Grid shared access signatures (SAS) and topic access keys, in both directions:
//! [`generate`] mints a token Azure accepts, [`verify`] checks a token the way the emulator must,
//! and [`TopicKey::matches`] checks an `aeg-sas-key` value.
//!
//! A token is `r=<resource>&e=<expiry>&s=<signature>`, each part URL-encoded; the signature is
//! `base64(HMAC-SHA256(key = base64-decoded access key, message = the text "r=…&e=…"))`.
//! Where the token travels (`aeg-sas-token`, `Authorization: SharedAccessSignature …`) is the
//! caller's business; [`token_from_authorization`] strips the `Authorization` scheme.
//!
//! The SDKs build that text differently (how Azure itself checks it is not documented, but tokens
//! from all of these are in use against it):
//!
//! | who | `r` | `e` | URL encoding |
//! |---|---|---|---|
//! | .NET `EventGridSasBuilder` | endpoint + `?api-version=2018-01-01` | `6/15/2017 6:20:15 PM +00:00` | `HttpUtility.UrlEncode`: lowercase hex, space as `+` |
//! | docs' C# sample | endpoint | `6/15/2017 6:20:15 PM` | same |
//! | Python `generate_sas` | endpoint + `?apiVersion=2018-01-01` | `str(datetime)`: `2020-01-01 00:00:00.123456+00:00`, no offset if naive | `quote(safe="~()*!.'")`: uppercase hex, space as `%20` |
//! | docs' Python sample | endpoint | naive `isoformat()`: `2020-01-01T00:00:00.123456` | `quote_plus`: uppercase hex, space as `+` |
//! | JS `generateSharedAccessSignature` | endpoint + `?apiVersion=2018-01-01` | `6/5/2020 12:09:03 PM` (UTC, no offset) | `encodeURIComponent`: uppercase hex, space as `%20` |
//! | Java `EventGridSasGenerator` | endpoint + `?api-version=2018-01-01` | `M/d/yyyy h:m:s a`: minutes and seconds NOT padded | `URLEncoder`: uppercase hex, space as `+` |
//!
//! Invariants:
//! - [`verify`] computes the HMAC over the bytes before the LAST `&s=` exactly as received, never
//!   over a re-encoded copy, so every encoding above verifies;
//! - signatures and keys are compared in constant time (`Mac::verify_slice`, `subtle`);
//! - no key, signature or token ever appears in an error message or in `Debug` output.
//!
//! [`generate`] writes the .NET `EventGridSasBuilder` form (`HttpUtility.UrlEncode`, expiry
//! `M/d/yyyy h:mm:ss tt +00:00` in UTC) for the resource exactly as given; the SDKs append
//! `?api-version=2018-01-01` (or `?apiVersion=`) themselves, and [`verify`] accepts either.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

type HmacSha256 = Hmac<Sha256>;

/// A topic access key: the base64 text Azure shows (44 characters for its 32-byte keys) and the
/// decoded bytes that key the HMAC. `Debug` never shows either.
#[derive(Clone)]
pub struct TopicKey {
    text: String,
    bytes: Vec<u8>,
}

/// Why a string is not a usable access key. Never quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicKeyError {
    #[error("the access key is empty; hint: an Event Grid access key is 44 characters of base64")]
    Empty,
    #[error(
        "the access key ({len} characters) is not standard padded base64: {problem}; \
         hint: an Event Grid access key is 44 characters of base64"
    )]
    NotBase64 { len: usize, problem: String },
}

impl TopicKey {
    /// Parses the base64 text of a key (standard alphabet, `=` padding), as the portal shows it.
    pub fn parse(base64: &str) -> Result<Self, TopicKeyError> {
        if base64.is_empty() {
            return Err(TopicKeyError::Empty);
        }
        let bytes = STANDARD
            .decode(base64)
            .map_err(|e| TopicKeyError::NotBase64 {
                len: base64.chars().count(),
                problem: describe_base64_error(&e),
            })?;
        if bytes.is_empty() {
            return Err(TopicKeyError::Empty);
        }
        Ok(Self {
            text: base64.to_owned(),
            bytes,
        })
    }

    /// A new random key shaped like Azure's: 32 bytes, 44 characters of base64.
    ///
    /// The randomness is two v4 UUIDs, 122 bits each from the operating system's CSPRNG (uuid's
    /// `v4` feature draws from `getrandom`), so no extra RNG dependency. SHA-256 of the pair
    /// spreads those 244 bits over all 32 bytes, so the fixed UUID version and variant bits do
    /// not show in the key.
    pub fn generate() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(uuid::Uuid::new_v4().as_bytes());
        hasher.update(uuid::Uuid::new_v4().as_bytes());
        let bytes = hasher.finalize().to_vec();
        Self {
            text: STANDARD.encode(&bytes),
            bytes,
        }
    }

    /// The key's base64 text, for handing to a client or writing to configuration. Named so that
    /// every place a key leaves this type is easy to find.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// Whether `presented` (an `aeg-sas-key` value) is this key's text. Constant time, whatever
    /// the lengths: both sides are hashed to 32-byte SHA-256 digests and those are compared with
    /// `subtle`, so neither the length nor a common prefix of the key leaks through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let presented = Sha256::digest(presented.as_bytes());
        let expected = Sha256::digest(self.text.as_bytes());
        presented.as_slice().ct_eq(expected.as_slice()).into()
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.bytes).expect("HMAC takes keys of any length")
    }
}

impl fmt::Debug for TopicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TopicKey(<redacted>)")
    }
}

impl std::str::FromStr for TopicKey {
    type Err = TopicKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for TopicKey {
    type Error = TopicKeyError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// What a valid token said. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    resource: String,
    expires: OffsetDateTime,
    key_index: usize,
}

impl VerifiedToken {
    /// The URL-decoded `r`, e.g. `https://t.westus2-1.eventgrid.azure.net/api/events?apiVersion=2018-01-01`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// When the token stops being valid, in UTC.
    pub fn expires(&self) -> OffsetDateTime {
        self.expires
    }

    /// Which of the keys passed to [`verify`] signed it (0 or 1 for a topic's two keys).
    pub fn key_index(&self) -> usize {
        self.key_index
    }
}

/// Why a SAS token was refused. Messages never contain a key, a signature or the whole token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasError {
    #[error("malformed SAS token: {0}; expected r=<resource>&e=<expiry>&s=<signature>")]
    Malformed(&'static str),
    #[error(
        "the SAS token's expiry '{value}' is not a time this emulator understands; expected e.g. \
         '6/15/2017 6:20:15 PM', '6/15/2017 6:20:15 PM +00:00', '2017-06-15T18:20:15Z', \
         '2017-06-15 18:20:15.123456+00:00' or unix seconds"
    )]
    UnreadableExpiry { value: String },
    #[error("the SAS token's signature does not match any of the topic's keys")]
    BadSignature,
    #[error(
        "the SAS token expired at {} (it is now {}); hint: generate a new one",
        rfc3339(.expired_at), rfc3339(.now)
    )]
    Expired {
        expired_at: OffsetDateTime,
        now: OffsetDateTime,
    },
    #[error(
        "the SAS token is for '{token_resource}', not for this topic's endpoint '{expected}'; \
         hint: generate the token for the URL you publish to"
    )]
    WrongResource {
        /// The host and path `r` names.
        token_resource: String,
        /// The host and path the token was presented to.
        expected: String,
    },
}

/// Where a token was presented: the host the client sent it to (`Host`, with its port) and the
/// request's path. Azure: "the resource is the path for the Event Grid topic to which you're
/// sending events".
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub host: &'a str,
    pub path: &'a str,
}

/// Mints a token for `resource` (used exactly as given) that expires at `expires`, in the .NET
/// `EventGridSasBuilder` encoding (see the module docs). Sub-seconds are dropped from `e`, as
/// .NET does.
pub fn generate(resource: &str, expires: OffsetDateTime, key: &TopicKey) -> String {
    let t = expires.to_offset(UtcOffset::UTC);
    let (hour, period) = match t.hour() {
        0 => (12, "AM"),
        h @ 1..=11 => (h, "AM"),
        12 => (12, "PM"),
        h => (h - 12, "PM"),
    };
    let expiry = format!(
        "{}/{}/{} {hour}:{:02}:{:02} {period} +00:00",
        u8::from(t.month()),
        t.day(),
        t.year(),
        t.minute(),
        t.second(),
    );
    let unsigned = format!(
        "r={}&e={}",
        dotnet_url_encode(resource),
        dotnet_url_encode(&expiry)
    );
    let mut mac = key.mac();
    mac.update(unsigned.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    format!("{unsigned}&s={}", dotnet_url_encode(&signature))
}

/// Checks a token against a topic's keys at time `now`, and, given the `target` it was presented
/// to, that `r` names that endpoint (see [`names_target`]).
///
/// Checks, in order: the shape (a last `&s=`, one `r=` and one `e=` before it), the signature
/// over the exact text before `&s=` with each key, then the expiry and the resource.
pub fn verify(
    token: &str,
    keys: &[TopicKey],
    now: OffsetDateTime,
    target: Option<&Target<'_>>,
) -> Result<VerifiedToken, SasError> {
    let token = token.trim();
    let (signed, encoded_signature) = token
        .rsplit_once("&s=")
        .ok_or(SasError::Malformed("no '&s=' signature part"))?;
    let fields = SignedFields::parse(signed)?;
    let signature = decode_signature(encoded_signature)?;

    // Every key is tried, with no early exit, and each comparison is constant time.
    let mut key_index = None;
    for (i, key) in keys.iter().enumerate() {
        let mut mac = key.mac();
        mac.update(signed.as_bytes());
        if mac.verify_slice(&signature).is_ok() && key_index.is_none() {
            key_index = Some(i);
        }
    }
    let key_index = key_index.ok_or(SasError::BadSignature)?;

    let resource = form_decode(fields.resource)
        .ok_or(SasError::Malformed("'r' is not URL-encoded UTF-8"))?
        .into_owned();
    let expires = parse_expiry(fields.expiry).ok_or_else(|| {
        let spaced = fields.expiry.replace('+', " ");
        SasError::UnreadableExpiry {
            value: shorten(&percent_decode_str(&spaced).decode_utf8_lossy()),
        }
    })?;
    if expires <= now {
        return Err(SasError::Expired {
            expired_at: expires,
            now,
        });
    }
    if let Some(target) = target
        && !names_target(&resource, target)
    {
        return Err(SasError::WrongResource {
            token_resource: shorten(&format!("{}{}", authority(&resource), path(&resource))),
            expected: shorten(&format!("{}{}", target.host, target.path)),
        });
    }
    Ok(VerifiedToken {
        resource,
        expires,
        key_index,
    })
}

/// The token in an `Authorization: SharedAccessSignature <token>` header value (scheme matched
/// case-insensitively), or `None` for any other scheme or an empty token.
pub fn token_from_authorization(value: &str) -> Option<&str> {
    const SCHEME: &str = "SharedAccessSignature";
    let value = value.trim_start();
    let scheme = value.get(..SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = value[SCHEME.len()..].strip_prefix([' ', '\t'])?.trim();
    (!token.is_empty()).then_some(token)
}

/// The raw (still URL-encoded) `r` and `e` of the signed part.
struct SignedFields<'a> {
    resource: &'a str,
    expiry: &'a str,
}

impl<'a> SignedFields<'a> {
    /// Other `name=value` pairs are ignored: they are covered by the signature anyway.
    fn parse(signed: &'a str) -> Result<Self, SasError> {
        fn set_once<'v>(
            slot: &mut Option<&'v str>,
            value: &'v str,
            twice: &'static str,
        ) -> Result<(), SasError> {
            match slot.replace(value) {
                Some(_) => Err(SasError::Malformed(twice)),
                None => Ok(()),
            }
        }
        let (mut resource, mut expiry) = (None, None);
        for pair in signed.split('&') {
            match pair.split_once('=') {
                Some(("r", value)) => set_once(&mut resource, value, "'r' appears twice")?,
                Some(("e", value)) => set_once(&mut expiry, value, "'e' appears twice")?,
                _ => {}
            }
        }
        Ok(Self {
            resource: resource.ok_or(SasError::Malformed("no 'r=' resource"))?,
            expiry: expiry.ok_or(SasError::Malformed("no 'e=' expiry"))?,
        })
    }
}

/// `s` is percent-decoded WITHOUT turning `+` into a space: base64 has `+` and never a space, and
/// every SDK encodes `+` as `%2B`, so a literal `+` can only be an unencoded base64 `+`.
fn decode_signature(encoded: &str) -> Result<Vec<u8>, SasError> {
    let text = percent_decode_str(encoded).collect::<Vec<u8>>();
    match STANDARD_PAD_INDIFFERENT.decode(text) {
        Ok(signature) if !signature.is_empty() => Ok(signature),
        _ => Err(SasError::Malformed("'s' is not URL-encoded base64")),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space (.NET, Java and `quote_plus`
/// write spaces so; the others write `+` itself as `%2B`).
fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if s.contains('+') {
        let spaced = s.replace('+', " ");
        let decoded = percent_decode_str(&spaced).decode_utf8().ok()?.into_owned();
        Some(Cow::Owned(decoded))
    } else {
        percent_decode_str(s).decode_utf8().ok()
    }
}

/// Reads `e` after URL-decoding it, leniently: the US form of .NET, JS and Java
/// (`M/d/yyyy h:mm:ss tt`, optional offset, unpadded fields and U+202F/U+00A0 spaces tolerated),
/// ISO 8601 / RFC 3339 and Python's `str(datetime)` (optional fraction and offset), and unix
/// seconds. A time without an offset is UTC. If the form-decoded text does not parse, the
/// text is tried again with `+` kept, for a client that left an offset's `+` unencoded.
fn parse_expiry(raw: &str) -> Option<OffsetDateTime> {
    let plus_as_space = form_decode(raw);
    let plus_kept = percent_decode_str(raw).decode_utf8().ok();
    [plus_as_space, plus_kept]
        .into_iter()
        .flatten()
        .find_map(|text| parse_expiry_text(text.trim()))
}

fn parse_expiry_text(text: &str) -> Option<OffsetDateTime> {
    if !text.is_empty() && text.len() <= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return OffsetDateTime::from_unix_timestamp(text.parse().ok()?).ok();
    }
    parse_us(text).or_else(|| parse_iso(text))
}

/// `M/d/yyyy h:mm:ss tt [zzz]`, e.g. `6/15/2017 6:20:15 PM +00:00`.
fn parse_us(text: &str) -> Option<OffsetDateTime> {
    let mut s = Scanner { rest: text };
    let month = s.digits(1, 2)?;
    s.expect('/')?;
    let day = s.digits(1, 2)?;
    s.expect('/')?;
    let year = s.digits(4, 4)?;
    (s.spaces() > 0).then_some(())?;
    let hour12 = s.digits(1, 2)?;
    s.expect(':')?;
    let minute = s.digits(1, 2)?;
    s.expect(':')?;
    let second = s.digits(1, 2)?;
    let nanos = s.fraction()?;
    s.spaces();
    let pm = s.period()?;
    s.spaces();
    let offset = s.offset()?;
    if !s.rest.is_empty() || !(1..=12).contains(&hour12) {
        return None;
    }
    let hour = hour12 % 12 + if pm { 12 } else { 0 };
    build(year, month, day, (hour, minute, second, nanos), offset)
}

/// `yyyy-MM-dd(T| )HH:mm:ss[.f…][Z|±hh:mm]`: RFC 3339, ISO 8601 and Python's `str(datetime)`.
fn parse_iso(text: &str) -> Option<OffsetDateTime> {
    let mut s = Scanner { rest: text };
    let year = s.digits(4, 4)?;
    s.expect('-')?;
    let month = s.digits(2, 2)?;
    s.expect('-')?;
    let day = s.digits(2, 2)?;
    (s.eat('T') || s.eat('t') || s.eat(' ')).then_some(())?;
    let hour = s.digits(2, 2)?;
    s.expect(':')?;
    let minute = s.digits(2, 2)?;
    s.expect(':')?;
    let second = s.digits(2, 2)?;
    let nanos = s.fraction()?;
    s.spaces();
    let offset = s.offset()?;
    if !s.rest.is_empty() {
        return None;
    }
    build(year, month, day, (hour, minute, second, nanos), offset)
}

fn build(
    year: u32,
    month: u32,
    day: u32,
    (hour, minute, second, nanos): (u32, u32, u32, u32),
    offset: Option<UtcOffset>,
) -> Option<OffsetDateTime> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms_nano(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        nanos,
    )
    .ok()?;
    let offset = offset.unwrap_or(UtcOffset::UTC);
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset)
            .to_offset(UtcOffset::UTC),
    )
}

/// A cursor over the expiry text; every method consumes only on success.
struct Scanner<'a> {
    rest: &'a str,
}

impl Scanner<'_> {
    /// `min..=max` ASCII digits.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let n = self
            .rest
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if n < min {
            return None;
        }
        let (digits, rest) = self.rest.split_at(n);
        self.rest = rest;
        digits.parse().ok()
    }

    fn expect(&mut self, c: char) -> Option<()> {
        self.eat(c).then_some(())
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    /// Skips spaces, including the no-break spaces ICU-based cultures put before AM/PM; returns
    /// how many bytes were skipped.
    fn spaces(&mut self) -> usize {
        let before = self.rest.len();
        self.rest = self
            .rest
            .trim_start_matches([' ', '\t', '\u{a0}', '\u{202f}']);
        before - self.rest.len()
    }

    /// Optional `.digits`, as nanoseconds (digits past the ninth are ignored). `None` only for a
    /// `.` without digits.
    fn fraction(&mut self) -> Option<u32> {
        if !self.eat('.') {
            return Some(0);
        }
        let n = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let (digits, rest) = self.rest.split_at(n);
        self.rest = rest;
        let nanos = digits
            .bytes()
            .chain(std::iter::repeat(b'0'))
            .take(9)
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        Some(nanos)
    }

    /// `AM`/`PM`, any case: `Some(true)` for PM.
    fn period(&mut self) -> Option<bool> {
        let word = self.rest.get(..2)?;
        let pm = if word.eq_ignore_ascii_case("PM") {
            true
        } else if word.eq_ignore_ascii_case("AM") {
            false
        } else {
            return None;
        };
        self.rest = &self.rest[2..];
        Some(pm)
    }

    /// Optional `Z` or `±hh[:mm]`/`±hhmm`: `Some(None)` when there is none, `None` when it is
    /// malformed.
    fn offset(&mut self) -> Option<Option<UtcOffset>> {
        if self.eat('Z') || self.eat('z') {
            return Some(Some(UtcOffset::UTC));
        }
        let sign: i8 = if self.eat('+') {
            1
        } else if self.eat('-') {
            -1
        } else {
            return Some(None);
        };
        let hours = i8::try_from(self.digits(2, 2)?).ok()?;
        let minutes = if self.eat(':') {
            self.digits(2, 2)?
        } else {
            self.digits(2, 2).unwrap_or(0)
        };
        let minutes = i8::try_from(minutes).ok()?;
        // Real offsets stay within ±14:00 (.NET's DateTimeOffset limit); `time` allows ±25:59.
        if hours > 14 || minutes > 59 {
            return None;
        }
        UtcOffset::from_hms(sign * hours, sign * minutes, 0)
            .ok()
            .map(Some)
    }
}

/// The authority (host and port) of a URL, or of a bare `host[:port]`; no user info.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if let Some((host, after)) = authority
        .strip_prefix('[')
        .and_then(|bracketed| bracketed.split_once(']'))
    {
        return (host, after.strip_prefix(':'));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (authority, None),
    }
}

/// The path of a URL: after the authority, before any query or fragment (empty when none).
fn path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = &rest[rest.find('/').unwrap_or(rest.len())..];
    &rest[..rest.find(['?', '#']).unwrap_or(rest.len())]
}

/// Whether the resource `r` names the endpoint a token was presented to:
/// - the same host, ignoring case; `localhost`, `127.0.0.1` and `[::1]` are one host (a local
///   client may use any of them), and ports must agree when both name one;
/// - the same path, ignoring case and a trailing `/`; a resource without a path names the topic
///   its host names, so it fits `/api/events` only (Azure's URL, and the emulator's host-named
///   topics), not `/<topic>/api/events`;
/// - the query (`?api-version=` from .NET, `?apiVersion=` from Python and JavaScript) and the
///   scheme are not compared: Azure's own check is not documented beyond "the resource is the
///   path for the Event Grid topic", and tokens from every SDK work against it.
pub fn names_target(resource: &str, target: &Target<'_>) -> bool {
    let (token_host, token_port) = split_host_port(authority(resource));
    let (expected_host, expected_port) = split_host_port(authority(target.host));
    let canonical = |host: &str| {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match host.as_str() {
            "localhost" | "127.0.0.1" | "::1" => "localhost".to_owned(),
            _ => host,
        }
    };
    let hosts = !token_host.is_empty()
        && canonical(token_host) == canonical(expected_host)
        && match (token_port, expected_port) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
    let trimmed = |p: &str| p.trim_end_matches('/').to_ascii_lowercase();
    let (token_path, expected_path) = (trimmed(path(resource)), trimmed(target.path));
    let paths =
        token_path == expected_path || (token_path.is_empty() && expected_path == "/api/events");
    hosts && paths
}

/// .NET `HttpUtility.UrlEncode` on UTF-8: letters, digits and `-_.!*()` as they are, space as
/// `+`, every other byte as lowercase `%xx`.
fn dotnet_url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'a'..=b'z'
            | b'A'..=b'Z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'*'
            | b'('
            | b')' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => {
                let _ = write!(out, "%{b:02x}");
            }
        }
    }
    out
}

fn describe_base64_error(e: &base64::DecodeError) -> String {
    // The variants carry the offending byte; only its position is reported, never key content.
    match e {
        base64::DecodeError::InvalidByte(offset, _) => format!("invalid character at {offset}"),
        base64::DecodeError::InvalidLength(_) => "its length is invalid".to_owned(),
        base64::DecodeError::InvalidLastSymbol { offset, .. } => {
            format!("invalid last character at {offset}")
        }
        base64::DecodeError::InvalidPadding => "missing or extra '=' padding".to_owned(),
    }
}

/// Client-supplied text in an error message is capped, so a huge header cannot flood the log.
fn shorten(s: &str) -> String {
    const MAX: usize = 100;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Bytes 0..=31: a fixed key so known-answer vectors can be computed elsewhere.
    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const ENDPOINT: &str = "https://mytopic.westus2-1.eventgrid.azure.net/api/events";
    const HOST: &str = "mytopic.westus2-1.eventgrid.azure.net";
    const AT_HOST: Target<'static> = Target {
        host: HOST,
        path: "/api/events",
    };
    const NOW: OffsetDateTime = datetime!(2017-06-15 12:00:00 UTC);

    fn key() -> TopicKey {
        TopicKey::parse(KEY).unwrap()
    }

    /// Percent-encodes like the SDKs do: ASCII letters and digits and `safe` as they are, space
    /// as `+` or `%20`, everything else as `%XX` in upper or lower case.
    fn encode(s: &str, safe: &str, space_as_plus: bool, lowercase: bool) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || safe.as_bytes().contains(&b) {
                out.push(char::from(b));
            } else if b == b' ' && space_as_plus {
                out.push('+');
            } else if lowercase {
                write!(out, "%{b:02x}").unwrap();
            } else {
                write!(out, "%{b:02X}").unwrap();
            }
        }
        out
    }
    /// Python `urllib.parse.quote(s, safe="~()*!.'")` as `azure.eventgrid.generate_sas` calls it
    /// (`_.-~` are always safe). `encodeURIComponent` (JS SDK) leaves exactly the same set.
    fn python_sdk(s: &str) -> String {
        encode(s, "_.-~()*!'", false, false)
    }
    fn js_sdk(s: &str) -> String {
        encode(s, "-_.!~*'()", false, false)
    }
    /// Python `urllib.parse.quote_plus` (the docs' Python sample).
    fn quote_plus(s: &str) -> String {
        encode(s, "_.-~", true, false)
    }
    /// Java `URLEncoder.encode(s, UTF-8)` (the Java SDK).
    fn java(s: &str) -> String {
        encode(s, ".-*_", true, false)
    }
    /// .NET `HttpUtility.UrlEncode`, rebuilt from its documented behaviour for the tests.
    fn dotnet(s: &str) -> String {
        encode(s, "-_.!*()", true, true)
    }

    /// A token signed the way every SDK signs: HMAC over `r=<r>&e=<e>` as built, then the
    /// base64 signature encoded with the same encoder.
    fn sign_with(
        key: &TopicKey,
        resource: &str,
        expiry: &str,
        enc: impl Fn(&str) -> String,
    ) -> String {
        let unsigned = format!("r={}&e={}", enc(resource), enc(expiry));
        let mut mac = key.mac();
        mac.update(unsigned.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        format!("{unsigned}&s={}", enc(&signature))
    }

    fn verify_now(token: &str) -> Result<VerifiedToken, SasError> {
        verify(token, &[key()], NOW, Some(&AT_HOST))
    }

    #[test]
    fn a_generated_token_verifies_and_reports_resource_and_expiry() {
        let expires = datetime!(2017-06-15 18:20:15.75 UTC);
        let token = generate(ENDPOINT, expires, &key());
        let verified = verify_now(&token).unwrap();
        assert_eq!(verified.resource(), ENDPOINT);
        assert_eq!(verified.expires(), datetime!(2017-06-15 18:20:15 UTC));
        assert_eq!(verified.key_index(), 0);
    }

    #[test]
    fn generate_writes_the_dotnet_sas_builder_form_byte_for_byte() {
        // A REPRODUCTION of Azure.Messaging.EventGrid's EventGridSasBuilder.GenerateSas (not run
        // against .NET, which cannot be installed here): r = endpoint + "?api-version=2018-01-01",
        // e = DateTimeOffset.ToString(en-US), both through HttpUtility.UrlEncode. The signature
        // is a known answer computed independently with Python's hmac module.
        let resource = format!("{ENDPOINT}?api-version=2018-01-01");
        let token = generate(&resource, datetime!(2017-06-15 18:20:15 UTC), &key());
        assert_eq!(
            token,
            "r=https%3a%2f%2fmytopic.westus2-1.eventgrid.azure.net%2fapi%2fevents%3fapi-version%3d2018-01-01\
             &e=6%2f15%2f2017+6%3a20%3a15+PM+%2b00%3a00\
             &s=eIJLvisunEMgrYIM6RbtMxtw0KOi%2bTxP75rH1h3I16I%3d"
        );
        assert_eq!(
            token,
            sign_with(&key(), &resource, "6/15/2017 6:20:15 PM +00:00", dotnet)
        );
    }

    #[test]
    fn generate_converts_to_utc_and_writes_midnight_and_noon_as_12() {
        let midnight = generate("x", datetime!(2017-06-16 02:05:09 +02:00), &key());
        assert!(midnight.contains("&e=6%2f16%2f2017+12%3a05%3a09+AM+%2b00%3a00&"));
        let noon = generate("x", datetime!(2017-06-16 12:00:00 UTC), &key());
        assert!(noon.contains("&e=6%2f16%2f2017+12%3a00%3a00+PM+%2b00%3a00&"));
    }

    #[test]
    fn a_tampered_token_is_rejected() {
        let token = generate(ENDPOINT, datetime!(2017-06-15 18:20:15 UTC), &key());
        let later_expiry = token.replace("6%3a20", "7%3a20");
        assert_eq!(verify_now(&later_expiry), Err(SasError::BadSignature));
        let other_topic = token.replace("mytopic", "mytopig");
        assert_eq!(
            verify(&other_topic, &[key()], NOW, None),
            Err(SasError::BadSignature)
        );
        let (prefix, signature) = token.rsplit_once("&s=").unwrap();
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let bad_signature = format!("{prefix}&s={flipped}{}", &signature[1..]);
        assert_eq!(verify_now(&bad_signature), Err(SasError::BadSignature));
    }

    #[test]
    fn a_token_signed_with_another_key_is_rejected() {
        let token = generate(
            ENDPOINT,
            datetime!(2017-06-15 18:20:15 UTC),
            &TopicKey::generate(),
        );
        assert_eq!(verify_now(&token), Err(SasError::BadSignature));
        assert_eq!(verify(&token, &[], NOW, None), Err(SasError::BadSignature));
    }

    #[test]
    fn a_token_signed_with_the_second_key_is_accepted() {
        let second = TopicKey::generate();
        let token = generate(ENDPOINT, datetime!(2017-06-15 18:20:15 UTC), &second);
        let verified = verify(&token, &[key(), second], NOW, Some(&AT_HOST)).unwrap();
        assert_eq!(verified.key_index(), 1);
    }

    #[test]
    fn an_expired_token_is_rejected_saying_when_it_expired() {
        let token = generate(ENDPOINT, datetime!(2017-06-15 11:59:59 UTC), &key());
        let err = verify_now(&token).unwrap_err();
        assert_eq!(
            err,
            SasError::Expired {
                expired_at: datetime!(2017-06-15 11:59:59 UTC),
                now: NOW
            }
        );
        assert!(
            err.to_string().contains("expired at 2017-06-15T11:59:59Z"),
            "{err}"
        );
        let at_expiry = generate(ENDPOINT, NOW, &key());
        assert!(matches!(
            verify_now(&at_expiry),
            Err(SasError::Expired { .. })
        ));
    }

    #[test]
    fn every_documented_expiry_format_parses() {
        let t = datetime!(2017-06-15 18:20:15 UTC);
        let cases: &[(&str, OffsetDateTime)] = &[
            // .NET DateTimeOffset.ToString(en-US), the docs' C# DateTime, JS, Java (unpadded).
            ("6/15/2017 6:20:15 PM +00:00", t),
            ("6/15/2017 6:20:15 PM", t),
            ("06/15/2017 06:20:15 pm", t),
            ("6/15/2017 8:20:15 PM +02:00", t),
            (
                "6/15/2017 6:20:15 PM -0100",
                datetime!(2017-06-15 19:20:15 UTC),
            ),
            ("6/15/2017 6:2:5 PM", datetime!(2017-06-15 18:02:05 UTC)),
            ("6/15/2017 12:00:00 AM", datetime!(2017-06-15 00:00:00 UTC)),
            ("6/15/2017 12:00:00 PM", datetime!(2017-06-15 12:00:00 UTC)),
            // ICU's narrow no-break space before AM/PM (.NET on some Linux ICU versions).
            ("6/15/2017 6:20:15\u{202f}PM", t),
            // RFC 3339 / ISO 8601.
            ("2017-06-15T18:20:15Z", t),
            (
                "2017-06-15T18:20:15.5+00:00",
                datetime!(2017-06-15 18:20:15.5 UTC),
            ),
            ("2017-06-15T20:20:15+02:00", t),
            (
                "2017-06-15T18:20:15.1234567Z",
                datetime!(2017-06-15 18:20:15.1234567 UTC),
            ),
            // Python str(datetime), aware and naive; naive isoformat() of the docs' sample.
            ("2017-06-15 18:20:15+00:00", t),
            (
                "2017-06-15 18:20:15.123456+00:00",
                datetime!(2017-06-15 18:20:15.123456 UTC),
            ),
            (
                "2017-06-15 18:20:15.123456",
                datetime!(2017-06-15 18:20:15.123456 UTC),
            ),
            (
                "2017-06-15T18:20:15.123456",
                datetime!(2017-06-15 18:20:15.123456 UTC),
            ),
            // Unix seconds.
            ("1497550815", t),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_expiry_text(text), Some(*expected), "{text:?}");
            // And through URL encoding and a full verify.
            for enc in [dotnet, python_sdk, quote_plus] {
                let token = sign_with(&key(), ENDPOINT, text, enc);
                let verified = verify(&token, &[key()], datetime!(2000-01-01 0:00 UTC), None);
                assert_eq!(verified.map(|v| v.expires()), Ok(*expected), "{text:?}");
            }
        }
    }

    #[test]
    fn unreadable_expiries_are_refused_quoting_the_value() {
        for text in [
            "",
            "tomorrow",
            "13/15/2017 6:20:15 PM",
            "6/15/2017 13:20:15 PM",
            "6/15/2017 6:20:15",
            "2017-06-15T18:20",
            "2017-06-15T18:20:15+25:00",
            "2017-02-30T18:20:15Z",
            "6/15/2017 6:20:15 PM +00:00 trailing",
        ] {
            assert_eq!(parse_expiry_text(text), None, "{text:?}");
        }
        let token = sign_with(&key(), ENDPOINT, "next tuesday", dotnet);
        let err = verify_now(&token).unwrap_err();
        assert_eq!(
            err,
            SasError::UnreadableExpiry {
                value: "next tuesday".to_owned()
            }
        );
    }

    #[test]
    fn an_offset_plus_left_unencoded_still_parses() {
        // A hand-made client that did not encode the '+' of the offset.
        let unsigned = "r=x&e=2017-06-15T18:20:15+00:00";
        let mut mac = key().mac();
        mac.update(unsigned.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let token = format!("{unsigned}&s={}", python_sdk(&signature));
        let verified = verify(&token, &[key()], NOW, None).unwrap();
        assert_eq!(verified.expires(), datetime!(2017-06-15 18:20:15 UTC));
    }

    #[test]
    fn tokens_in_every_sdk_encoding_verify() {
        type Case = (&'static str, String, &'static str, fn(&str) -> String);
        let cases: [Case; 6] = [
            (
                ".NET EventGridSasBuilder",
                format!("{ENDPOINT}?api-version=2018-01-01"),
                "6/15/2017 6:20:15 PM +00:00",
                dotnet,
            ),
            (
                "docs' C# sample",
                ENDPOINT.to_owned(),
                "6/15/2017 6:20:15 PM",
                dotnet,
            ),
            (
                "Python generate_sas",
                format!("{ENDPOINT}?apiVersion=2018-01-01"),
                "2017-06-15 18:20:15.123456+00:00",
                python_sdk,
            ),
            (
                "docs' Python sample",
                ENDPOINT.to_owned(),
                "2017-06-15T18:20:15.123456",
                quote_plus,
            ),
            (
                "JS generateSharedAccessSignature",
                format!("{ENDPOINT}?apiVersion=2018-01-01"),
                "6/15/2017 6:20:15 PM",
                js_sdk,
            ),
            (
                "Java EventGridSasGenerator",
                format!("{ENDPOINT}?api-version=2018-01-01"),
                "6/15/2017 6:20:15 PM",
                java,
            ),
        ];
        for (who, resource, expiry, enc) in cases {
            let token = sign_with(&key(), &resource, expiry, enc);
            let verified = verify_now(&token).unwrap_or_else(|e| panic!("{who}: {e}"));
            assert_eq!(verified.resource(), resource, "{who}");
        }
        // The encodings really differ on the wire, so this is not one case six times.
        let by = |enc: fn(&str) -> String| sign_with(&key(), ENDPOINT, "6/15/2017 6:20:15 PM", enc);
        assert!(by(dotnet).contains("%3a") && by(dotnet).contains('+'));
        assert!(by(js_sdk).contains("%3A") && by(js_sdk).contains("%20"));
    }

    #[test]
    fn the_signature_is_checked_over_the_bytes_as_received_not_re_encoded() {
        // Same resource and expiry, lowercase vs uppercase hex: each verifies only with its own
        // signature, so the verifier must not normalise the encoding before signing.
        let upper = sign_with(&key(), ENDPOINT, "6/15/2017 6:20:15 PM", js_sdk);
        let lower = sign_with(&key(), ENDPOINT, "6/15/2017 6:20:15 PM", |s: &str| {
            encode(s, "-_.!~*'()", false, true)
        });
        assert!(verify_now(&upper).is_ok() && verify_now(&lower).is_ok());
        let (upper_prefix, _) = upper.rsplit_once("&s=").unwrap();
        let (_, lower_signature) = lower.rsplit_once("&s=").unwrap();
        let mixed = format!("{upper_prefix}&s={lower_signature}");
        assert_eq!(verify_now(&mixed), Err(SasError::BadSignature));
    }

    #[test]
    fn signatures_are_compared_in_constant_time_and_any_length_is_just_a_mismatch() {
        // Structure only: verification goes through `Mac::verify_slice` (constant time in
        // `subtle`) for every key, and a wrong-length signature is an ordinary mismatch.
        let token = generate(ENDPOINT, datetime!(2017-06-15 18:20:15 UTC), &key());
        let (prefix, _) = token.rsplit_once("&s=").unwrap();
        for signature in [
            "AAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let token = format!("{prefix}&s={signature}");
            assert_eq!(verify_now(&token), Err(SasError::BadSignature));
        }
    }

    #[test]
    fn r_must_name_the_endpoint_the_token_is_presented_to() {
        let expires = datetime!(2017-06-15 18:20:15 UTC);
        let at = |resource: &str, host: &str, path: &str| {
            verify(
                &generate(resource, expires, &key()),
                &[key()],
                NOW,
                Some(&Target { host, path }),
            )
        };
        let ok = |resource: &str, host: &str, path: &str| at(resource, host, path).is_ok();
        // Azure's form, with either SDK's query, any case, a trailing slash.
        assert!(ok(
            ENDPOINT,
            "MyTopic.WestUS2-1.EventGrid.Azure.Net",
            "/api/events"
        ));
        assert!(ok(
            &format!("{ENDPOINT}?api-version=2018-01-01"),
            HOST,
            "/api/events"
        ));
        assert!(ok(
            &format!("{ENDPOINT}?apiVersion=2018-01-01"),
            HOST,
            "/API/Events/"
        ));
        assert!(ok(HOST, HOST, "/api/events"), "a bare host names its topic");
        // The emulator: topics by path or by host label, loopback under any name.
        assert!(ok(
            "http://127.0.0.1:7080/orders/api/events",
            "127.0.0.1:7080",
            "/orders/api/events"
        ));
        assert!(ok(
            "http://localhost:7080/orders/api/events?apiVersion=2018-01-01",
            "127.0.0.1:7080",
            "/orders/api/events"
        ));
        assert!(ok(
            "http://[::1]:7080/orders/api/events",
            "localhost:7080",
            "/orders/api/events"
        ));
        assert!(ok(
            "http://orders.localhost:7071/api/events",
            "orders.localhost:7071",
            "/api/events"
        ));
        assert!(ok(
            "http://orders.localhost/api/events",
            "orders.localhost:7071",
            "/api/events"
        ));
        // Another topic, host, port or path: refused, saying which.
        assert_eq!(
            at(
                ENDPOINT,
                "othertopic.westus2-1.eventgrid.azure.net",
                "/api/events"
            )
            .unwrap_err(),
            SasError::WrongResource {
                token_resource: format!("{HOST}/api/events"),
                expected: "othertopic.westus2-1.eventgrid.azure.net/api/events".to_owned()
            }
        );
        assert!(!ok(
            "http://127.0.0.1:7080/payments/api/events",
            "127.0.0.1:7080",
            "/orders/api/events"
        ));
        assert!(!ok(
            "http://127.0.0.1:7081/orders/api/events",
            "127.0.0.1:7080",
            "/orders/api/events"
        ));
        assert!(!ok(
            "http://orders.localhost:7080/api/events",
            "localhost:7080",
            "/api/events"
        ));
        assert!(!ok(ENDPOINT, "127.0.0.1:7080", "/orders/api/events"));
        assert!(!ok(
            "http://127.0.0.1:7080",
            "127.0.0.1:7080",
            "/orders/api/events"
        ));
        assert!(!ok(
            "/orders/api/events",
            "127.0.0.1:7080",
            "/orders/api/events"
        ));
        // No target: any resource.
        let token = generate("anything at all", expires, &key());
        assert!(verify(&token, &[key()], NOW, None).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused_with_a_reason() {
        let expires = datetime!(2017-06-15 18:20:15 UTC);
        let token = generate(ENDPOINT, expires, &key());
        let (prefix, signature) = token.rsplit_once("&s=").unwrap();
        let cases = [
            (prefix.to_owned(), "no '&s=' signature part"),
            (format!("e=1&s={signature}"), "no 'r=' resource"),
            (format!("r=x&s={signature}"), "no 'e=' expiry"),
            (format!("r=x&r=y&e=1&s={signature}"), "'r' appears twice"),
            (format!("{prefix}&s=%%%"), "'s' is not URL-encoded base64"),
            (format!("{prefix}&s="), "'s' is not URL-encoded base64"),
        ];
        for (token, reason) in cases {
            assert_eq!(
                verify_now(&token),
                Err(SasError::Malformed(reason)),
                "{token}"
            );
        }
    }

    #[test]
    fn surrounding_whitespace_and_unpadded_signatures_are_tolerated() {
        let token = generate(ENDPOINT, datetime!(2017-06-15 18:20:15 UTC), &key());
        assert!(verify_now(&format!("  {token}\t")).is_ok());
        let unpadded = token.trim_end_matches("%3d");
        assert!(verify_now(unpadded).is_ok());
    }

    #[test]
    fn errors_and_debug_output_never_contain_the_key_or_the_signature() {
        let k = key();
        assert_eq!(format!("{k:?}"), "TopicKey(<redacted>)");
        let token = generate(ENDPOINT, datetime!(2017-06-15 11:00:00 UTC), &k);
        let (_, signature) = token.rsplit_once("&s=").unwrap();
        let errors = [
            verify_now(&token).unwrap_err(),
            verify(&token, &[TopicKey::generate()], NOW, None).unwrap_err(),
            verify(
                &token.replace("11%3a00", "x"),
                std::slice::from_ref(&k),
                NOW,
                None,
            )
            .unwrap_err(),
        ];
        for err in errors {
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(KEY) && !text.contains(signature), "{text}");
            }
        }
        let bad = TopicKey::parse("not base64 at all!").unwrap_err();
        assert!(!bad.to_string().contains("not base64 at all"), "{bad}");
    }

    #[test]
    fn topic_keys_parse_from_base64_and_refuse_anything_else() {
        assert!(TopicKey::parse(KEY).is_ok());
        assert_eq!(TopicKey::parse("").unwrap_err(), TopicKeyError::Empty);
        for bad in [
            "abc",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
            "AA!=",
            "====",
            "AAEC AwQF",
        ] {
            assert!(
                matches!(TopicKey::parse(bad), Err(TopicKeyError::NotBase64 { .. })),
                "{bad}"
            );
        }
        assert!(
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
                .parse::<TopicKey>()
                .is_ok()
        );
    }

    #[test]
    fn generated_keys_look_like_azure_keys_and_differ() {
        let a = TopicKey::generate();
        let b = TopicKey::generate();
        assert_eq!(a.expose_secret().len(), 44);
        assert!(a.expose_secret().ends_with('='));
        assert_eq!(TopicKey::parse(a.expose_secret()).unwrap().bytes.len(), 32);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn matches_accepts_only_the_exact_key_text() {
        let k = key();
        assert!(k.matches(KEY));
        assert!(!k.matches(""));
        assert!(!k.matches(&KEY[..43]));
        assert!(!k.matches(&format!("{KEY}=")));
        assert!(!k.matches(&KEY.to_lowercase()));
        assert!(!k.matches(TopicKey::generate().expose_secret()));
    }

    #[test]
    fn the_authorization_header_scheme_is_stripped_case_insensitively() {
        assert_eq!(
            token_from_authorization("SharedAccessSignature r=a&e=b&s=c"),
            Some("r=a&e=b&s=c")
        );
        assert_eq!(
            token_from_authorization("sharedaccesssignature  r=a&e=b&s=c "),
            Some("r=a&e=b&s=c")
        );
        assert_eq!(token_from_authorization("SharedAccessSignature"), None);
        assert_eq!(token_from_authorization("SharedAccessSignature   "), None);
        assert_eq!(token_from_authorization("SharedAccessSignaturer=a"), None);
        assert_eq!(token_from_authorization("Bearer eyJ0eXAi"), None);
        assert_eq!(token_from_authorization("Shared"), None);
    }

    // Property tests (issue 14).
    use proptest::prelude::*;

    proptest! {
        /// Whatever is presented as a token or a key: an answer, never a panic.
        #[test]
        fn any_text_as_a_token_or_a_key_is_answered(
            text in prop_oneof!["\\PC{0,200}", "(r|e|s|skn)=[^&]{0,40}(&(r|e|s|skn)=[^&]{0,40}){0,4}"],
        ) {
            let _ = verify(&text, &[key()], NOW, Some(&AT_HOST));
            let _ = TopicKey::parse(&text);
            let _ = token_from_authorization(&text);
        }

        /// A token made for a resource and a time verifies there with its key, and any change to
        /// the text it signs, or another key, is refused.
        #[test]
        fn a_made_token_verifies_and_a_changed_one_does_not(
            seconds in 60i64..1_000_000,
            at in any::<prop::sample::Index>(),
            replacement in "[a-zA-Z0-9%=&:/._-]",
        ) {
            let expires = NOW + time::Duration::seconds(seconds);
            let token = generate(ENDPOINT, expires, &key());
            prop_assert!(verify(&token, &[key()], NOW, Some(&AT_HOST)).is_ok());
            prop_assert!(verify(&token, &[TopicKey::generate()], NOW, Some(&AT_HOST)).is_err());
            let signed = token.rfind("&s=").unwrap();
            let i = at.index(signed);
            let mut changed = token.clone();
            changed.replace_range(i..i + 1, &replacement);
            if changed != token {
                prop_assert!(verify(&changed, &[key()], NOW, Some(&AT_HOST)).is_err(), "{changed}");
            }
        }
    }
}
