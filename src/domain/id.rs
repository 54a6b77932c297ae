//! Bounded, storage-safe identifiers.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is {0} characters long, the maximum is {max}", max = Identifier::MAX_LEN)]
    TooLong(usize),
    #[error("contains {0:?}; allowed are letters, digits and . _ : -")]
    BadCharacter(char),
    #[error("must start with a letter or digit")]
    BadStart,
}

/// The shared rules behind every id: 1..=128 characters of `[A-Za-z0-9._:-]`, starting with a
/// letter or digit. That alphabet is safe as a file name, a blob name and in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identifier(String);

impl Identifier {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        let len = raw.chars().count();
        if len > Self::MAX_LEN {
            return Err(IdError::TooLong(len));
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(IdError::BadCharacter(bad));
        }
        if !raw.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(IdError::BadStart);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Identifier);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                Identifier::parse(raw).map(Self)
            }

            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

id_newtype!(
    /// The business identity of an order: every effect is keyed by it.
    OrderId
);
id_newtype!(
    /// The customer who placed an order.
    CustomerId
);
id_newtype!(
    /// A stock-keeping unit of an order line.
    Sku
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_seed_ids_and_common_shapes() {
        for ok in ["12345", "67890", "ord-2026-11-22:0001", "A", "a.b_c"] {
            assert!(OrderId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_empty_long_and_unsafe_ids() {
        assert_eq!(OrderId::parse(""), Err(IdError::Empty));
        assert_eq!(OrderId::parse(&"x".repeat(129)), Err(IdError::TooLong(129)));
        assert_eq!(OrderId::parse("a/b"), Err(IdError::BadCharacter('/')));
        assert_eq!(OrderId::parse("a b"), Err(IdError::BadCharacter(' ')));
        assert_eq!(OrderId::parse("..x"), Err(IdError::BadStart));
        assert_eq!(OrderId::parse("-x"), Err(IdError::BadStart));
        assert!(OrderId::parse(&"x".repeat(128)).is_ok());
    }
}
