//! `NewOrder`: seed 004's payload, parsed into domain types at the edge.
//!
//! The wire shape is `{"orderId", "customerId", "orderValue", "customerEmail"}` plus optional
//! `"currency"` (ISO 4217, default from settings) and `"items"`
//! (`[{"sku", "name"?, "quantity", "unitPrice"}]`). Unknown fields are ignored.
//!
//! Parsing collects *every* problem, not only the first, so an `OrderRejected` event tells the
//! publisher all that is wrong at once.
//!
//! Money may be a JSON number or a string. A string is exact end to end; a number is exact only
//! until something reads it as a double, which the Functions host does with every number in an
//! event (`150.00` arrives as `150.0`, digits past the 15th or so are rounded). So a number with
//! more significant digits than a double keeps is rejected, naming the string form.
//!
//! A [`NewOrder`] serializes in this same wire shape (amounts as strings, the currency named), so
//! what is recorded, and what `OrderAccepted` carries, reads back with [`NewOrder::parse_recorded`].

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Currency, CustomerId, EmailAddress, Money, OrderId, Sku};

/// Bounds that make an order "absurd" rather than merely large; settings, with sane defaults.
#[derive(Debug, Clone)]
pub struct OrderLimits {
    pub max_order_value: Decimal,
    pub default_currency: Currency,
    pub max_items: usize,
    pub max_quantity: u32,
}

impl Default for OrderLimits {
    fn default() -> Self {
        Self {
            max_order_value: Decimal::from(1_000_000u32),
            default_currency: Currency::parse("USD").expect("USD is in the table"),
            max_items: 100,
            max_quantity: 10_000,
        }
    }
}

/// A valid order, as recorded and as rendered in the confirmation email.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    order_id: OrderId,
    customer_id: CustomerId,
    order_value: Money,
    customer_email: EmailAddress,
    items: Vec<OrderItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    sku: Sku,
    name: Option<String>,
    quantity: u32,
    unit_price: Money,
}

/// The wire shape [`NewOrder::parse`] reads, with every amount a string.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordedOrder<'a> {
    order_id: &'a OrderId,
    customer_id: &'a CustomerId,
    #[serde(with = "rust_decimal::serde::str")]
    order_value: Decimal,
    currency: Currency,
    customer_email: &'a EmailAddress,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    items: Vec<RecordedItem<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordedItem<'a> {
    sku: &'a Sku,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    quantity: u32,
    #[serde(with = "rust_decimal::serde::str")]
    unit_price: Decimal,
}

impl Serialize for NewOrder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        RecordedOrder {
            order_id: &self.order_id,
            customer_id: &self.customer_id,
            order_value: self.order_value.amount(),
            currency: self.order_value.currency(),
            customer_email: &self.customer_email,
            items: self
                .items
                .iter()
                .map(|item| RecordedItem {
                    sku: &item.sku,
                    name: item.name.as_deref(),
                    quantity: item.quantity,
                    unit_price: item.unit_price.amount(),
                })
                .collect(),
        }
        .serialize(serializer)
    }
}

/// One thing wrong with an order: which field (`items[2].quantity`) and what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectionReason {
    pub field: String,
    pub message: String,
}

/// Why an order was refused; what `OrderRejected` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The order id as sent, when there was a string to quote (it may itself be invalid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    pub reasons: Vec<RejectionReason>,
}

impl Rejection {
    /// One line naming every reason: `orderValue: must be greater than zero; customerEmail: …`.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|r| format!("{}: {}", r.field, r.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOrder<'a> {
    #[serde(borrow, default)]
    order_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    customer_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    order_value: Option<&'a RawValue>,
    #[serde(borrow, default)]
    customer_email: Option<&'a RawValue>,
    #[serde(borrow, default)]
    currency: Option<&'a RawValue>,
    #[serde(borrow, default)]
    items: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireItem<'a> {
    #[serde(borrow, default)]
    sku: Option<&'a RawValue>,
    #[serde(borrow, default)]
    name: Option<&'a RawValue>,
    #[serde(borrow, default)]
    quantity: Option<&'a RawValue>,
    #[serde(borrow, default)]
    unit_price: Option<&'a RawValue>,
}

/// Collects reasons while fields are parsed one by one.
struct Checker {
    reasons: Vec<RejectionReason>,
}

/// A JSON value's type, named for error messages.
fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().trim_start().as_bytes().first() {
        Some(b'"') => "a string",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn is_null(raw: Option<&RawValue>) -> bool {
    raw.is_none_or(|r| r.get().trim() == "null")
}

impl Checker {
    fn reject(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.reasons.push(RejectionReason {
            field: field.into(),
            message: message.into(),
        });
    }

    /// A required string field.
    fn string(&mut self, field: &str, raw: Option<&RawValue>) -> Option<String> {
        if is_null(raw) {
            self.reject(field, "is required");
            return None;
        }
        let raw = raw?;
        match serde_json::from_str::<String>(raw.get()) {
            Ok(s) => Some(s),
            Err(_) => {
                self.reject(field, format!("must be a string, got {}", json_kind(raw)));
                None
            }
        }
    }

    /// A decimal given as a JSON number (its literal text) or as a string holding one. A number
    /// with more significant digits than a double keeps is refused: the Functions host would
    /// have rounded it before the handler saw it.
    fn decimal_text(&mut self, field: &str, raw: Option<&RawValue>) -> Option<String> {
        if is_null(raw) {
            self.reject(field, "is required");
            return None;
        }
        let raw = raw?;
        match json_kind(raw) {
            "a number" => {
                let text = raw.get().trim();
                let digits = significant_digits(text);
                if digits > DOUBLE_DIGITS {
                    self.reject(
                        field,
                        format!(
                            "{text} has {digits} significant digits, more than a double keeps \
                             ({DOUBLE_DIGITS}), and the Functions host reads JSON numbers as \
                             doubles; send it as a string (\"{text}\") to keep it exact"
                        ),
                    );
                    return None;
                }
                Some(text.to_owned())
            }
            "a string" => serde_json::from_str::<String>(raw.get()).ok(),
            kind => {
                self.reject(field, format!("must be a decimal number, got {kind}"));
                None
            }
        }
    }
}

/// Decimal digits a double always keeps through text and back (`DBL_DIG`).
const DOUBLE_DIGITS: usize = 15;

/// The significant digits of a JSON number's text: without leading zeros, trailing zeros, sign,
/// point or exponent (`150.00` has 2, `0.0012` has 2, `10.000000000000000001` has 20).
fn significant_digits(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or(number);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

impl NewOrder {
    /// Reads an order as this module wrote it (a record, or `OrderAccepted`'s data): the same
    /// parser, without the limits, which applied when it was accepted.
    pub fn parse_recorded(data: &str) -> Result<Self, Rejection> {
        let unlimited = OrderLimits {
            max_order_value: Decimal::MAX,
            max_items: usize::MAX,
            max_quantity: u32::MAX,
            ..OrderLimits::default()
        };
        Self::parse(data, &unlimited)
    }

    /// Parses the `data` of a NewOrder event. `Err` lists every reason the order is invalid.
    pub fn parse(data: &str, limits: &OrderLimits) -> Result<Self, Rejection> {
        let mut check = Checker { reasons: vec![] };
        let is_object = data.trim_start().starts_with('{');
        let wire: WireOrder<'_> = match serde_json::from_str(data) {
            Ok(wire) if is_object => wire,
            _ => {
                return Err(Rejection {
                    order_id: None,
                    reasons: vec![RejectionReason {
                        field: "data".into(),
                        message: "must be a JSON object with orderId, customerId, orderValue and \
                                  customerEmail"
                            .into(),
                    }],
                });
            }
        };

        let raw_order_id = check.string("orderId", wire.order_id);
        let order_id = raw_order_id.as_deref().and_then(|s| {
            OrderId::parse(s)
                .map_err(|e| check.reject("orderId", e.to_string()))
                .ok()
        });
        let customer_id = check.string("customerId", wire.customer_id).and_then(|s| {
            CustomerId::parse(&s)
                .map_err(|e| check.reject("customerId", e.to_string()))
                .ok()
        });
        let customer_email = check
            .string("customerEmail", wire.customer_email)
            .and_then(|s| {
                EmailAddress::parse(&s)
                    .map_err(|e| check.reject("customerEmail", e.to_string()))
                    .ok()
            });
        let currency = if is_null(wire.currency) {
            Some(limits.default_currency)
        } else {
            check.string("currency", wire.currency).and_then(|s| {
                let c = Currency::parse(&s);
                if c.is_none() {
                    check.reject(
                        "currency",
                        format!("{s:?} is not an ISO 4217 currency code"),
                    );
                }
                c
            })
        };
        let value_text = check.decimal_text("orderValue", wire.order_value);
        let order_value = match (value_text, currency) {
            (Some(text), Some(currency)) => Money::parse(&text, currency, limits.max_order_value)
                .map_err(|e| check.reject("orderValue", e.to_string()))
                .ok(),
            _ => None,
        };
        let items = match currency {
            Some(currency) => parse_items(&mut check, wire.items, currency, limits),
            None => vec![],
        };

        match (order_id, customer_id, order_value, customer_email) {
            (Some(order_id), Some(customer_id), Some(order_value), Some(customer_email))
                if check.reasons.is_empty() =>
            {
                Ok(Self {
                    order_id,
                    customer_id,
                    order_value,
                    customer_email,
                    items,
                })
            }
            _ => Err(Rejection {
                order_id: raw_order_id,
                reasons: check.reasons,
            }),
        }
    }

    pub fn order_id(&self) -> &OrderId {
        &self.order_id
    }

    pub fn customer_id(&self) -> &CustomerId {
        &self.customer_id
    }

    pub fn order_value(&self) -> Money {
        self.order_value
    }

    pub fn customer_email(&self) -> &EmailAddress {
        &self.customer_email
    }

    pub fn items(&self) -> &[OrderItem] {
        &self.items
    }
}

fn parse_items(
    check: &mut Checker,
    raw: Option<&RawValue>,
    currency: Currency,
    limits: &OrderLimits,
) -> Vec<OrderItem> {
    if is_null(raw) {
        return vec![];
    }
    let Some(raw) = raw else { return vec![] };
    let Ok(wire_items) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
        check.reject("items", format!("must be an array, got {}", json_kind(raw)));
        return vec![];
    };
    if wire_items.len() > limits.max_items {
        check.reject(
            "items",
            format!(
                "has {} entries, the maximum is {}",
                wire_items.len(),
                limits.max_items
            ),
        );
        return vec![];
    }
    let mut items = Vec::with_capacity(wire_items.len());
    for (i, raw_item) in wire_items.iter().enumerate() {
        let at = |f: &str| format!("items[{i}].{f}");
        let Ok(item) = serde_json::from_str::<WireItem<'_>>(raw_item.get()) else {
            check.reject(
                format!("items[{i}]"),
                format!("must be an object, got {}", json_kind(raw_item)),
            );
            continue;
        };
        let sku = check.string(&at("sku"), item.sku).and_then(|s| {
            Sku::parse(&s)
                .map_err(|e| check.reject(at("sku"), e.to_string()))
                .ok()
        });
        let name = if is_null(item.name) {
            None
        } else {
            check.string(&at("name"), item.name).and_then(|n| {
                if n.chars().count() > 200 || n.chars().any(char::is_control) {
                    check.reject(
                        at("name"),
                        "must be at most 200 characters without control characters",
                    );
                    None
                } else {
                    Some(n)
                }
            })
        };
        let quantity = match item.quantity {
            q if is_null(q) => {
                check.reject(at("quantity"), "is required");
                None
            }
            Some(q) => match q.get().trim().parse::<u32>() {
                Ok(n) if (1..=limits.max_quantity).contains(&n) => Some(n),
                _ => {
                    check.reject(
                        at("quantity"),
                        format!(
                            "must be a whole number from 1 to {}, got {}",
                            limits.max_quantity,
                            q.get().trim()
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let unit_price = check
            .decimal_text(&at("unitPrice"), item.unit_price)
            .and_then(|text| {
                Money::parse(&text, currency, limits.max_order_value)
                    .map_err(|e| check.reject(at("unitPrice"), e.to_string()))
                    .ok()
            });
        if let (Some(sku), Some(quantity), Some(unit_price)) = (sku, quantity, unit_price) {
            items.push(OrderItem {
                sku,
                name,
                quantity,
                unit_price,
            });
        }
    }
    items
}

impl OrderItem {
    pub fn sku(&self) -> &Sku {
        &self.sku
    }

    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn quantity(&self) -> u32 {
        self.quantity
    }

    pub fn unit_price(&self) -> Money {
        self.unit_price
    }

    /// `quantity × unit price`, in the order's currency.
    pub fn line_total(&self) -> Decimal {
        self.unit_price.amount() * Decimal::from(self.quantity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<NewOrder, Rejection> {
        NewOrder::parse(json, &OrderLimits::default())
    }

    fn fields(r: &Rejection) -> Vec<&str> {
        r.reasons.iter().map(|r| r.field.as_str()).collect()
    }

    #[test]
    fn parses_the_seed_payload_exactly() {
        let order = parse(
            r#"{"orderId":"12345","customerId":"67890","orderValue":150.0,"customerEmail":"customer@example.com"}"#,
        )
        .unwrap();
        assert_eq!(order.order_id().as_str(), "12345");
        assert_eq!(order.order_value().to_string(), "150.00 USD");
        assert_eq!(order.customer_email().as_str(), "customer@example.com");
        assert!(order.items().is_empty());
    }

    #[test]
    fn parses_currency_string_amounts_and_items() {
        let order = parse(
            r#"{"orderId":"A-1","customerId":"c","orderValue":"20.50","currency":"eur","customerEmail":"x@example.org",
                "items":[{"sku":"SKU-1","name":"Mug","quantity":2,"unitPrice":"10.25"}]}"#,
        )
        .unwrap();
        assert_eq!(order.order_value().to_string(), "20.50 EUR");
        assert_eq!(order.items()[0].line_total().to_string(), "20.50");
    }

    #[test]
    fn lists_every_problem_at_once() {
        let r = parse(
            r#"{"orderId":"","customerId":7,"orderValue":-5,"customerEmail":"nope",
                "items":[{"sku":"ok","quantity":0,"unitPrice":1}, 5]}"#,
        )
        .unwrap_err();
        assert_eq!(r.order_id.as_deref(), Some(""));
        assert_eq!(
            fields(&r),
            [
                "orderId",
                "customerId",
                "customerEmail",
                "orderValue",
                "items[0].quantity",
                "items[1]"
            ]
        );
        assert!(
            r.summary()
                .contains("customerId: must be a string, got a number")
        );
        // With an unknown currency amounts cannot be checked against its minor units.
        let r = parse(r#"{"orderId":"1","customerId":"c","orderValue":1,"customerEmail":"a@b.co","currency":"XXX"}"#)
            .unwrap_err();
        assert_eq!(fields(&r), ["currency"]);
    }

    #[test]
    fn reports_item_problems_with_their_index() {
        let r = parse(
            r#"{"orderId":"1","customerId":"c","orderValue":1,"customerEmail":"a@b.co",
                "items":[{"sku":"ok","quantity":0,"unitPrice":1}, 5, {"sku":"s","quantity":1.5,"unitPrice":"1.001"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            fields(&r),
            [
                "items[0].quantity",
                "items[1]",
                "items[2].quantity",
                "items[2].unitPrice"
            ]
        );
    }

    #[test]
    fn missing_fields_and_nulls_are_required_errors() {
        let r = parse(r#"{"orderId":null}"#).unwrap_err();
        assert_eq!(
            fields(&r),
            ["orderId", "customerId", "customerEmail", "orderValue"]
        );
        assert!(r.reasons.iter().all(|r| r.message == "is required"));
    }

    #[test]
    fn non_objects_are_rejected_as_data() {
        for bad in ["[]", "\"x\"", "42", "not json"] {
            assert_eq!(fields(&parse(bad).unwrap_err()), ["data"]);
        }
    }

    #[test]
    fn numbers_a_double_would_round_are_rejected_strings_are_exact() {
        let with = |value: &str| {
            parse(&format!(
                r#"{{"orderId":"1","customerId":"c","orderValue":{value},"customerEmail":"a@b.co"}}"#
            ))
        };
        let r = with("10.000000000000000001").unwrap_err();
        assert_eq!(fields(&r), ["orderValue"]);
        assert!(
            r.summary().contains("send it as a string"),
            "{}",
            r.summary()
        );
        assert!(
            with("150.00000000000000000000").is_ok(),
            "trailing zeros lose nothing"
        );
        assert!(with("123456.78").is_ok());
        let precise = with(r#""10.000000000000000001""#).unwrap_err();
        assert!(
            precise.summary().contains("more decimal places"),
            "a string is exact, so the currency's rule speaks: {}",
            precise.summary()
        );
        assert_eq!(significant_digits("-0.00120e5"), 2);
        assert_eq!(significant_digits("1000"), 1);
    }

    #[test]
    fn a_serialized_order_reads_back_the_same() {
        let order = parse(
            r#"{"orderId":"A-1","customerId":"c","orderValue":"20.5","currency":"EUR","customerEmail":"x@example.org",
                "items":[{"sku":"SKU-1","name":"Mug","quantity":2,"unitPrice":10.25}]}"#,
        )
        .unwrap();
        let written = serde_json::to_string(&order).unwrap();
        assert_eq!(
            written,
            r#"{"orderId":"A-1","customerId":"c","orderValue":"20.50","currency":"EUR","customerEmail":"x@example.org","items":[{"sku":"SKU-1","name":"Mug","quantity":2,"unitPrice":"10.25"}]}"#
        );
        assert_eq!(NewOrder::parse_recorded(&written).unwrap(), order);
        let big = r#"{"orderId":"B","customerId":"c","orderValue":"5000000.00","currency":"USD","customerEmail":"x@example.org"}"#;
        assert!(parse(big).is_err(), "over today's limit");
        assert!(NewOrder::parse_recorded(big).is_ok(), "but it was recorded");
    }

    #[test]
    fn absurd_values_are_rejected() {
        let r = parse(
            r#"{"orderId":"1","customerId":"c","orderValue":1e300,"customerEmail":"a@b.co"}"#,
        )
        .unwrap_err();
        assert_eq!(fields(&r), ["orderValue"]);
    }
}
