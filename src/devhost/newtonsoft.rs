//! What the real Functions host's JSON library does to an event before the custom handler sees
//! it. The Event Grid extension reads a delivery with Newtonsoft.Json 13 defaults and the host
//! writes it out again for the handler (`HttpRequestProcessor`, `JsonMediaTypeFormatter`;
//! details and sources in `../shared/reference/functions-host-behaviour.md`):
//!
//! - nesting deeper than 64 levels (the delivery's array counting as one) fails the delivery;
//! - an integer literal stays an integer: `150` → `150`, beyond 64 bits it is kept exactly
//!   (`BigInteger`), `-0` → `0`; more than 380 digits fails the delivery;
//! - a literal with `.`, `e` or `E` becomes a double and is written back with .NET's round-trip
//!   format plus a decimal place: `150.00` → `150.0`, `1e2` → `100.0`, `1e17` → `1E+17`,
//!   `0.00001` → `1E-05`, digits past the 17th significant are rounded; one beyond the double's
//!   range becomes the *string* `"Infinity"` (.NET Core 3+ parses it as infinity and
//!   Newtonsoft writes non-finite doubles as strings);
//! - strings are untouched (dates are not parsed: `DateParseHandling.None`).
//!
//! Invariant: [`through_host`] changes numbers only; keys, order and strings stay.

use crate::json::{Json, JsonError, Number};

/// Newtonsoft.Json 13's `JsonReader.MaxDepth`: 64 nested containers, the 65th fails.
pub const MAX_DEPTH: usize = 64;

/// Newtonsoft refuses integer literals longer than this ("JSON integer … is too large to parse").
const MAX_INTEGER_CHARS: usize = 380;

/// Parses a delivery body as the extension reads it.
pub fn parse(body: &[u8]) -> Result<Json, JsonError> {
    Json::parse(body, MAX_DEPTH)
}

/// Rewrites every number in `value` as the host would hand it to the handler. `Err` names an
/// integer too long for Newtonsoft, which fails the whole delivery.
pub fn through_host(value: &mut Json) -> Result<(), String> {
    match value {
        Json::Number(n) => *value = number(n)?,
        Json::Array(items) => items.iter_mut().try_for_each(through_host)?,
        Json::Object(members) => members
            .iter_mut()
            .try_for_each(|(_, value)| through_host(value))?,
        Json::Null | Json::Bool(_) | Json::String(_) => {}
    }
    Ok(())
}

fn number(n: &Number) -> Result<Json, String> {
    let text = n.as_str();
    if !text.contains(['.', 'e', 'E']) {
        if text.len() > MAX_INTEGER_CHARS {
            return Err(format!("JSON integer {text:.20}… is too large to parse."));
        }
        // Int64 when it fits, else BigInteger, which prints the same digits.
        let written = text
            .parse::<i64>()
            .map_or_else(|_| text.to_owned(), |i| i.to_string());
        return Ok(Json::Number(
            Number::parse(&written).unwrap_or_else(|| n.clone()),
        ));
    }
    let double: f64 = text.parse().unwrap_or(f64::NAN);
    if double.is_infinite() {
        let sign = if double < 0.0 { "-" } else { "" };
        return Ok(Json::String(format!("{sign}Infinity").into()));
    }
    let written = ensure_decimal_place(round_trip(double));
    Ok(Json::Number(
        Number::parse(&written).unwrap_or_else(|| n.clone()),
    ))
}

/// .NET Core 3+ `double.ToString("R", InvariantCulture)`: the shortest digits that read back as
/// the same double, in fixed notation unless the decimal exponent is beyond 17 digits or below
/// -4 (`Number.Formatting.cs`, `FormatGeneral` with `nMaxDigits = max(digits, 17)`); exponents as
/// `E+XX` / `E-XX`, at least two digits.
fn round_trip(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip form too: `d.ddde±x`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    let position = exponent + 1; // where the decimal point falls after the first digit
    let max_digits = (digits.len() as i32).max(17);
    if position > max_digits || position < -3 {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{first}{point}E{exponent_sign}{:02}", exponent.abs())
    } else if position <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-position) as usize))
    } else if position as usize >= digits.len() {
        format!(
            "{sign}{digits}{}",
            "0".repeat(position as usize - digits.len())
        )
    } else {
        let (int, frac) = digits.split_at(position as usize);
        format!("{sign}{int}.{frac}")
    }
}

/// Newtonsoft's `EnsureDecimalPlace`: a double always reads as one (`150` → `150.0`).
fn ensure_decimal_place(text: String) -> String {
    if text.contains(['.', 'E', 'e']) {
        text
    } else {
        text + ".0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(text: &str) -> String {
        let mut value = Json::parse(text.as_bytes(), MAX_DEPTH).unwrap();
        through_host(&mut value).unwrap();
        value.to_string()
    }

    #[test]
    fn numbers_come_out_as_the_host_writes_them() {
        // From the Newtonsoft 13 and .NET runtime sources (functions-host-behaviour.md).
        for (sent, seen) in [
            ("150", "150"),
            ("12345678901234567890123", "12345678901234567890123"),
            ("-0", "0"),
            ("150.00", "150.0"),
            ("1e2", "100.0"),
            ("10.000000000000000001", "10.0"),
            ("1e15", "1000000000000000.0"),
            ("1e16", "10000000000000000.0"),
            ("1e17", "1E+17"),
            ("1e21", "1E+21"),
            ("1.5e-7", "1.5E-07"),
            ("0.0001", "0.0001"),
            ("0.00001", "1E-05"),
            ("123.456", "123.456"),
            ("12345678901234567000.0", "1.2345678901234567E+19"),
            ("-0.0", "-0.0"),
            ("1e-400", "0.0"),
            ("0.1", "0.1"),
            ("-2.5", "-2.5"),
            ("1e309", "\"Infinity\""),
            ("-1e309", "\"-Infinity\""),
        ] {
            assert_eq!(through(sent), seen, "{sent}");
        }
    }

    #[test]
    fn only_numbers_change() {
        assert_eq!(
            through(
                r#"{"a":[1.50,{"b":"1.50","c":true,"d":null}],"e":"2024-01-01T00:00:00+01:00"}"#
            ),
            r#"{"a":[1.5,{"b":"1.50","c":true,"d":null}],"e":"2024-01-01T00:00:00+01:00"}"#
        );
    }

    #[test]
    fn the_host_refuses_what_newtonsoft_refuses() {
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(parse(deep.as_bytes()).is_err());
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse(ok.as_bytes()).is_ok());
        let mut long = Json::parse("9".repeat(381).as_bytes(), 1).unwrap();
        assert!(through_host(&mut long).unwrap_err().contains("too large"));
    }
}
