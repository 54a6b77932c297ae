//! Money: a decimal amount in a currency. Never a float.
//!
//! Amounts are parsed from the *text* of the JSON literal (`150.0` or `"150.00"`), so no binary
//! floating point is ever involved, and an amount keeps exactly the digits the publisher sent.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;

use super::Currency;

/// Why an amount is not acceptable money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("is not a decimal number ({0})")]
    NotANumber(String),
    #[error("must be greater than zero, got {0}")]
    NotPositive(Decimal),
    #[error("{amount} has more decimal places than {currency} allows ({minor_units})")]
    TooPrecise {
        amount: Decimal,
        currency: Currency,
        minor_units: u32,
    },
    #[error("{amount} exceeds the maximum order value of {max}")]
    TooLarge { amount: Decimal, max: Decimal },
}

/// A positive amount of a currency with no more decimals than the currency's minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Parses an amount given as decimal text (a JSON number's literal or a string's content).
    /// Exponent notation (`1.5e2`) is accepted because JSON allows it.
    pub fn parse(text: &str, currency: Currency, max: Decimal) -> Result<Self, MoneyError> {
        let text = text.trim();
        let amount = Decimal::from_str(text)
            .or_else(|_| Decimal::from_scientific(text))
            .map_err(|_| MoneyError::NotANumber(text.to_owned()))?;
        Self::new(amount, currency, max)
    }

    pub fn new(amount: Decimal, currency: Currency, max: Decimal) -> Result<Self, MoneyError> {
        let amount = amount.normalize();
        if amount <= Decimal::ZERO {
            return Err(MoneyError::NotPositive(amount));
        }
        if amount.scale() > currency.minor_units() {
            return Err(MoneyError::TooPrecise {
                amount,
                currency,
                minor_units: currency.minor_units(),
            });
        }
        if amount > max {
            return Err(MoneyError::TooLarge { amount, max });
        }
        let mut amount = amount;
        amount.rescale(currency.minor_units());
        Ok(Self { amount, currency })
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    /// `150.00 USD`: the amount with the currency's minor units, then the ISO code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }
    const MAX: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

    #[test]
    fn keeps_the_literal_digits() {
        let m = Money::parse("150.0", usd(), MAX).unwrap();
        assert_eq!(m.to_string(), "150.00 USD");
        assert_eq!(
            Money::parse("0.1", usd(), MAX).unwrap().to_string(),
            "0.10 USD"
        );
        assert_eq!(
            Money::parse("1.5e2", usd(), MAX).unwrap().to_string(),
            "150.00 USD"
        );
    }

    #[test]
    fn rejects_negative_zero_precise_and_absurd_amounts() {
        assert!(matches!(
            Money::parse("-1", usd(), MAX),
            Err(MoneyError::NotPositive(_))
        ));
        assert!(matches!(
            Money::parse("0", usd(), MAX),
            Err(MoneyError::NotPositive(_))
        ));
        assert!(matches!(
            Money::parse("1.001", usd(), MAX),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            Money::parse("1e9", usd(), MAX),
            Err(MoneyError::TooLarge { .. })
        ));
        assert!(matches!(
            Money::parse("abc", usd(), MAX),
            Err(MoneyError::NotANumber(_))
        ));
        let jpy = Currency::parse("JPY").unwrap();
        assert!(Money::parse("1.5", jpy, MAX).is_err());
        assert_eq!(
            Money::parse("1500", jpy, MAX).unwrap().to_string(),
            "1500 JPY"
        );
    }

    #[test]
    fn trailing_zeros_beyond_minor_units_are_fine() {
        assert_eq!(
            Money::parse("10.000", usd(), MAX).unwrap().to_string(),
            "10.00 USD"
        );
    }
}
