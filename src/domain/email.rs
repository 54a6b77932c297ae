//! Email addresses, parsed by the crate that will send to them.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// A syntactically valid `local@domain` address (no display name), at most 254 characters
/// (RFC 5321's path limit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(lettre::Address);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("{0:?} is not an email address ({1})")]
    Invalid(String, String),
    #[error("is {0} characters long, the maximum is 254")]
    TooLong(usize),
    #[error("{0:?} has no dot in its domain")]
    NoDomainDot(String),
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.len() > 254 {
            return Err(EmailError::TooLong(raw.len()));
        }
        let address = lettre::Address::from_str(raw)
            .map_err(|e| EmailError::Invalid(raw.to_owned(), e.to_string()))?;
        // lettre accepts `user@localhost`; an order confirmation needs a routable domain.
        if !address.domain().contains('.') && !address.domain().starts_with('[') {
            return Err(EmailError::NoDomainDot(raw.to_owned()));
        }
        Ok(Self(address))
    }

    pub fn as_lettre(&self) -> &lettre::Address {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_ref()
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EmailAddress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_addresses() {
        assert!(EmailAddress::parse("customer@example.com").is_ok());
        assert!(EmailAddress::parse("first.last+tag@sub.example.co.uk").is_ok());
    }

    #[test]
    fn rejects_bad_ones() {
        for bad in [
            "",
            "nobody",
            "a@",
            "@b.com",
            "a b@c.com",
            "Name <a@b.com>",
            "a@localhost",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(matches!(
            EmailAddress::parse(&long),
            Err(EmailError::TooLong(_))
        ));
    }
}
