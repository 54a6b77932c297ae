//! JSON as the emulator and the host stand-in need it: a tree whose numbers stay the text that
//! was sent, parsed once with a nesting limit, with the raw text of each top-level member kept.
//!
//! Why not `serde_json::Value`: it turns numbers into `f64` (so `1e309` fails to parse and
//! `0.12345678901234567890` loses digits) unless the crate-wide `arbitrary_precision` feature is
//! on, which changes how numbers deserialize through `#[serde(flatten)]` everywhere in the
//! binary. This parser is checked against serde_json on random input (see the tests): it accepts
//! exactly what serde_json accepts, apart from the nesting limit and numbers out of `f64` range.
//!
//! Invariants:
//! - a [`Json`] never nests deeper than the limit it was parsed with, so walking, writing and
//!   dropping it cannot exhaust the stack;
//! - a [`Number`] holds valid JSON number text, compared exactly ([`Number::exact_cmp`]);
//! - strings hold the decoded text; an escaped lone surrogate (valid JSON, which .NET accepts)
//!   decodes to U+FFFD, so callers that must keep the text as sent use the raw spans.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;

/// Event Grid does not document how deep an event may nest. The .NET JSON readers that Event
/// Grid and the Functions host run on stop at 64 levels by default (Newtonsoft.Json 13
/// `JsonReader.MaxDepth`, System.Text.Json `JsonReaderOptions.MaxDepth`), counting the array a
/// delivery wraps events in; so an event may nest 63 levels, itself included.
pub const MAX_EVENT_DEPTH: usize = 63;

/// A JSON value whose numbers are kept as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(Box<str>),
    Array(Vec<Json>),
    /// Members in the order sent; a repeated name is kept (lookups take the last, as .NET does).
    Object(Vec<(Box<str>, Json)>),
}

/// Valid JSON number text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number(Box<str>);

/// Why text is not JSON the caller accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset where the problem was found.
    pub offset: usize,
    pub kind: JsonErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonErrorKind {
    Syntax(&'static str),
    TooDeep { limit: usize },
    InvalidUtf8,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JsonErrorKind::Syntax(what) => write!(f, "{what} at byte {}", self.offset),
            JsonErrorKind::TooDeep { limit } => write!(
                f,
                "the JSON nests deeper than {limit} levels at byte {}",
                self.offset
            ),
            JsonErrorKind::InvalidUtf8 => write!(f, "invalid UTF-8 at byte {}", self.offset),
        }
    }
}

impl std::error::Error for JsonError {}

impl Json {
    /// Parses a whole document nesting at most `max_depth` levels.
    pub fn parse(text: &[u8], max_depth: usize) -> Result<Json, JsonError> {
        let mut parser = Parser::new(text, max_depth);
        let value = parser.value()?;
        parser.end()?;
        Ok(value)
    }

    /// The member named `name`: spelt exactly (the last, if repeated), else the first spelt so
    /// ignoring case. `None` for a non-object.
    pub fn get(&self, name: &str) -> Option<&Json> {
        let Json::Object(members) = self else {
            return None;
        };
        members
            .iter()
            .rev()
            .find(|(key, _)| &**key == name)
            .or_else(|| members.iter().find(|(key, _)| eq_ignore_case(key, name)))
            .map(|(_, value)| value)
    }

    /// The value at `path` in the JSON document `text`, each name matched as [`Json::get`]
    /// matches it: the same answer as parsing the document and walking the tree, but only that
    /// value is built; the rest is checked ([`Parser::skip`]) and dropped as it is read. `None`
    /// when the document does not parse or the path leads nowhere.
    pub fn value_at(text: &[u8], path: &[&str], max_depth: usize) -> Option<Json> {
        let mut parser = Parser::new(text, max_depth);
        let Some((name, rest)) = path.split_first() else {
            let value = parser.value().ok()?;
            return parser.end().ok().map(|()| value);
        };
        // The last member spelt exactly, else the first spelt so ignoring case.
        let (mut exact, mut folded) = (None, None);
        parser
            .members(|parser, key, start| {
                parser.skip()?;
                if &*key == *name {
                    exact = Some(start..parser.pos);
                } else if folded.is_none() && eq_ignore_case(&key, name) {
                    folded = Some(start..parser.pos);
                }
                Ok(())
            })
            .ok()?;
        parser.end().ok()?;
        // The member's value nests one level less deep than the object around it.
        let span = exact.or(folded)?;
        Self::value_at(&text[span], rest, max_depth.saturating_sub(1))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    /// What kind of value this is, for messages: "a string", "an object", ….
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// Appends this value as compact JSON text (numbers exactly as held).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Json::Null => out.extend_from_slice(b"null"),
            Json::Bool(true) => out.extend_from_slice(b"true"),
            Json::Bool(false) => out.extend_from_slice(b"false"),
            Json::Number(n) => out.extend_from_slice(n.as_str().as_bytes()),
            Json::String(text) => write_string(text, out),
            Json::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
            Json::Object(members) => {
                out.push(b'{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write_string(key, out);
                    out.push(b':');
                    value.write(out);
                }
                out.push(b'}');
            }
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write(&mut out);
        out
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_vec()))
    }
}

/// For tests and for values that come from `serde_json` (the subscriptions file).
impl From<&serde_json::Value> for Json {
    fn from(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(*b),
            serde_json::Value::Number(n) => Json::Number(Number(n.to_string().into())),
            serde_json::Value::String(s) => Json::String(s.as_str().into()),
            serde_json::Value::Array(items) => Json::Array(items.iter().map(Json::from).collect()),
            serde_json::Value::Object(members) => Json::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), Json::from(v)))
                    .collect(),
            ),
        }
    }
}

/// Case-insensitive comparison by Unicode lower case, as Event Grid compares names and strings.
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    a == b
        || a.chars()
            .flat_map(char::to_lowercase)
            .eq(b.chars().flat_map(char::to_lowercase))
}

/// `text` as a JSON string literal.
pub fn write_string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text.as_bytes()[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&text.as_bytes()[start..]);
    out.push(b'"');
}

impl Number {
    /// `text` if it is a JSON number (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    pub fn parse(text: &str) -> Option<Number> {
        (number_len(text.as_bytes()) == Some(text.len())).then(|| Number(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nearest `f64` (infinite beyond its range), for callers that need one.
    pub fn to_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// Compares the exact decimal values, whatever their size or number of digits.
    pub fn exact_cmp(&self, other: &Number) -> Ordering {
        Decimal::of(&self.0).cmp(&Decimal::of(&other.0))
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A number as sign, significant digits and exponent: `0.d1d2d3… × 10^exponent`, digits without
/// leading or trailing zeros (empty for zero, whose sign is ignored).
#[derive(PartialEq, Eq)]
struct Decimal<'a> {
    negative: bool,
    digits: DigitString<'a>,
    exponent: i64,
}

#[derive(PartialEq, Eq)]
struct DigitString<'a> {
    integer: &'a str,
    fraction: &'a str,
}

impl DigitString<'_> {
    fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        self.integer.bytes().chain(self.fraction.bytes())
    }

    fn is_zero(&self) -> bool {
        self.integer.is_empty() && self.fraction.is_empty()
    }
}

impl<'a> Decimal<'a> {
    /// From valid JSON number text.
    fn of(text: &'a str) -> Self {
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], parse_exponent(&unsigned[at + 1..])),
            None => (unsigned, 0),
        };
        let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        // Leading zeros of the integer part do not count; when it is all zeros, the leading
        // zeros of the fraction move the exponent down instead.
        let integer = integer.trim_start_matches('0');
        let (fraction, shift) = if integer.is_empty() {
            let trimmed = fraction.trim_start_matches('0');
            (trimmed, -((fraction.len() - trimmed.len()) as i64))
        } else {
            (fraction, integer.len() as i64)
        };
        let (integer, fraction) = if fraction.trim_end_matches('0').is_empty() {
            (integer.trim_end_matches('0'), "")
        } else {
            (integer, fraction.trim_end_matches('0'))
        };
        let digits = DigitString { integer, fraction };
        let zero = digits.is_zero();
        Decimal {
            negative: negative && !zero,
            digits,
            exponent: if zero {
                0
            } else {
                exponent.saturating_add(shift)
            },
        }
    }

    fn magnitude_cmp(&self, other: &Self) -> Ordering {
        match (self.digits.is_zero(), other.digits.is_zero()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {}
        }
        self.exponent
            .cmp(&other.exponent)
            .then_with(|| self.digits.iter().cmp(other.digits.iter()))
    }
}

impl Ord for Decimal<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.magnitude_cmp(other),
            (true, true) => other.magnitude_cmp(self),
        }
    }
}

impl PartialOrd for Decimal<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An exponent's digits, saturating far beyond any meaningful size (`1e99999999999999999999`).
fn parse_exponent(text: &str) -> i64 {
    const LIMIT: i64 = i64::MAX / 4;
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = digits.bytes().fold(0i64, |acc, d| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(d - b'0'))
            .min(LIMIT)
    });
    if negative { -magnitude } else { magnitude }
}

/// The length of the JSON number at the start of `bytes`, or `None` if there is none.
fn number_len(bytes: &[u8]) -> Option<usize> {
    let digits_from = |at: usize| {
        bytes[at.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    match bytes.get(at) {
        Some(b'0') => at += 1,
        Some(b'1'..=b'9') => at += digits_from(at),
        _ => return None,
    }
    if bytes.get(at) == Some(&b'.') {
        let n = digits_from(at + 1);
        if n == 0 {
            return None;
        }
        at += 1 + n;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let n = digits_from(at);
        if n == 0 {
            return None;
        }
        at += n;
    }
    Some(at)
}

/// A cursor over JSON text. Callers that need the raw text of parts of a document (events in a
/// publish request, members of an event) walk it with [`Parser::array`] and
/// [`Parser::object_with_spans`]; [`Json::parse`] takes a whole document.
pub struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    max_depth: usize,
}

/// The members of an object and, for each, where its value's text is in the parsed bytes.
pub struct Spanned {
    pub object: Json,
    pub spans: Vec<Range<usize>>,
}

impl<'a> Parser<'a> {
    pub fn new(bytes: &'a [u8], max_depth: usize) -> Self {
        Self {
            bytes,
            pos: 0,
            depth: 0,
            max_depth,
        }
    }

    fn error(&self, kind: JsonErrorKind) -> JsonError {
        JsonError {
            offset: self.pos,
            kind,
        }
    }

    fn syntax(&self, what: &'static str) -> JsonError {
        self.error(JsonErrorKind::Syntax(what))
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.pos += 1;
        }
    }

    /// The next significant byte, without consuming it.
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    /// The byte offset reached.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Only whitespace may follow.
    pub fn end(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.syntax("trailing characters")),
        }
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else if self.pos >= self.bytes.len() {
            Err(self.syntax("unexpected end of input"))
        } else {
            Err(self.syntax(what))
        }
    }

    fn enter(&mut self) -> Result<(), JsonError> {
        if self.depth >= self.max_depth {
            // At the bracket just consumed.
            return Err(JsonError {
                offset: self.pos - 1,
                kind: JsonErrorKind::TooDeep {
                    limit: self.max_depth,
                },
            });
        }
        self.depth += 1;
        Ok(())
    }

    /// The next value.
    pub fn value(&mut self) -> Result<Json, JsonError> {
        match self.peek() {
            None => Err(self.syntax("unexpected end of input")),
            Some(b'{') => {
                let mut members = Vec::new();
                self.members(|parser, key, _| {
                    members.push((key.into(), parser.value()?));
                    Ok(())
                })?;
                Ok(Json::Object(members))
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.array(|parser| {
                    items.push(parser.value()?);
                    Ok(())
                })?;
                Ok(Json::Array(items))
            }
            Some(b'"') => Ok(Json::String(self.string()?.into())),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => {
                let len = number_len(&self.bytes[self.pos..])
                    .ok_or_else(|| self.syntax("invalid number"))?;
                let text = std::str::from_utf8(&self.bytes[self.pos..self.pos + len])
                    .map_err(|_| self.error(JsonErrorKind::InvalidUtf8))?;
                self.pos += len;
                Ok(Json::Number(Number(text.into())))
            }
            Some(_) => Err(self.syntax("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static [u8], value: Json) -> Result<Json, JsonError> {
        if self.bytes[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.syntax("expected a value"))
        }
    }

    /// Walks an array, calling `each` with the parser positioned at every element.
    pub fn array(
        &mut self,
        mut each: impl FnMut(&mut Self) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.expect(b'[', "expected an array")?;
        self.enter()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
        } else {
            loop {
                each(self)?;
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    None => return Err(self.syntax("unexpected end of input")),
                    Some(_) => return Err(self.syntax("expected ',' or ']'")),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// Walks an object, calling `each` with every key, the parser positioned at its value, and
    /// where the value starts; `each` must consume the value (with [`Parser::value`] or
    /// [`Parser::skip`]).
    pub fn members(
        &mut self,
        mut each: impl FnMut(&mut Self, Cow<'a, str>, usize) -> Result<(), JsonError>,
    ) -> Result<(), JsonError> {
        self.expect(b'{', "expected an object")?;
        self.enter()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.syntax("expected a string key"));
                }
                let key = self.key()?;
                self.expect(b':', "expected ':'")?;
                self.skip_whitespace();
                let start = self.pos;
                each(self, key, start)?;
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    None => return Err(self.syntax("unexpected end of input")),
                    Some(_) => return Err(self.syntax("expected ',' or '}'")),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// The next value, which must be an object, with the text span of each member's value.
    pub fn object_with_spans(&mut self) -> Result<Spanned, JsonError> {
        let mut members = Vec::new();
        let mut spans = Vec::new();
        self.members(|parser, key, start| {
            members.push((key.into(), parser.value()?));
            spans.push(start..parser.pos);
            Ok(())
        })?;
        Ok(Spanned {
            object: Json::Object(members),
            spans,
        })
    }

    /// Checks the next value as [`Parser::value`] does, without building it.
    pub fn skip(&mut self) -> Result<(), JsonError> {
        match self.peek() {
            Some(b'{') => self.members(|parser, _, _| parser.skip()),
            Some(b'[') => self.array(Parser::skip),
            Some(b'"') => self.scan_string(None),
            Some(b'-' | b'0'..=b'9') => {
                let len = number_len(&self.bytes[self.pos..])
                    .ok_or_else(|| self.syntax("invalid number"))?;
                self.pos += len;
                Ok(())
            }
            _ => self.value().map(|_| ()),
        }
    }

    /// A member's name: borrowed from the text when it has no escapes (the usual case), so
    /// walking or skipping an object allocates nothing for its names. Checked as
    /// [`Parser::string`] checks it, with the same errors.
    fn key(&mut self) -> Result<Cow<'a, str>, JsonError> {
        let (bytes, start) = (self.bytes, self.pos + 1);
        let plain = bytes[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
            .filter(|&run| bytes[start + run] == b'"');
        let Some(run) = plain else {
            return self.string().map(Cow::Owned);
        };
        let text = std::str::from_utf8(&bytes[start..start + run]).map_err(|e| JsonError {
            offset: start + e.valid_up_to(),
            kind: JsonErrorKind::InvalidUtf8,
        })?;
        self.pos = start + run + 1;
        Ok(Cow::Borrowed(text))
    }

    fn string(&mut self) -> Result<String, JsonError> {
        let mut out = String::new();
        self.scan_string(Some(&mut out))?;
        Ok(out)
    }

    /// Reads a string, decoding it into `out` when given (checking it either way).
    fn scan_string(&mut self, mut out: Option<&mut String>) -> Result<(), JsonError> {
        self.pos += 1; // the opening quote
        loop {
            let run = self.bytes[self.pos..]
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .ok_or(JsonError {
                    offset: self.bytes.len(),
                    kind: JsonErrorKind::Syntax("unterminated string"),
                })?;
            let chunk = &self.bytes[self.pos..self.pos + run];
            let text = std::str::from_utf8(chunk).map_err(|e| JsonError {
                offset: self.pos + e.valid_up_to(),
                kind: JsonErrorKind::InvalidUtf8,
            })?;
            if let Some(out) = out.as_deref_mut() {
                out.push_str(text);
            }
            self.pos += run;
            match self.bytes[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {
                    self.pos += 1;
                    let escaped = self
                        .bytes
                        .get(self.pos)
                        .copied()
                        .ok_or_else(|| self.syntax("unterminated string"))?;
                    self.pos += 1;
                    let decoded = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.syntax("invalid escape")),
                    };
                    if let Some(out) = out.as_deref_mut() {
                        out.push(decoded);
                    }
                }
                _ => return Err(self.syntax("control character in string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, JsonError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.syntax("unterminated string"))?;
        let mut value = 0u16;
        for &d in digits {
            let nibble = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.syntax("invalid \\u escape"))?;
            value = value * 16 + nibble as u16;
        }
        self.pos += 4;
        Ok(value)
    }

    /// After `\u`: one code point, joining a surrogate pair; a lone surrogate becomes U+FFFD.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let first = self.hex4()?;
        if (0xD800..0xDC00).contains(&first) && self.bytes[self.pos..].starts_with(b"\\u") {
            let saved = self.pos;
            self.pos += 2;
            let second = self.hex4()?;
            if (0xDC00..0xE000).contains(&second) {
                let code =
                    0x10000 + ((u32::from(first) - 0xD800) << 10) + (u32::from(second) - 0xDC00);
                return Ok(char::from_u32(code).unwrap_or('\u{FFFD}'));
            }
            // Not a low surrogate: the first is lone; the second escape is read on its own.
            self.pos = saved;
        }
        Ok(char::from_u32(u32::from(first)).unwrap_or('\u{FFFD}'))
    }
}

#[cfg(test)]
pub(crate) mod strategies;
#[cfg(test)]
mod tests;
