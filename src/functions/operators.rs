//! Who may open the operators' board (and so receive every order's updates): the setting
//! `ORDERGRID_OPERATORS`, matched against the principal name App Service Authentication puts in
//! the `X-MS-CLIENT-PRINCIPAL-NAME` request header.
//!
//! - `*`: anyone who can reach the app (the local stack's default: it listens on 127.0.0.1);
//! - empty (the default): nobody;
//! - otherwise comma-separated principal names (`ops@shop.example, lead@shop.example`), compared
//!   ignoring case.
//!
//! Invariant: a named principal is trusted only because App Service Authentication sets the
//! header and strips it from client requests ("External requests aren't allowed to set these
//! headers", configure-authentication-user-identities); without it, anyone can send the header.
//! So names count only where the platform says authentication is on: App Service injects
//! `WEBSITE_AUTH_ENABLED=True` then (the variable Microsoft.Identity.Web's
//! `AppServicesAuthenticationInformation` reads). Elsewhere named operators mean nobody, with a
//! warning; `*` is unaffected.

use std::collections::BTreeSet;

/// The request header that names the signed-in principal.
pub const PRINCIPAL_NAME_HEADER: &str = "X-MS-CLIENT-PRINCIPAL-NAME";

/// What App Service sets when its authentication is on (`True`).
pub const AUTH_ENABLED_VARIABLE: &str = "WEBSITE_AUTH_ENABLED";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operators {
    /// `*`.
    Anyone,
    /// These principal names, lowercased; none means nobody.
    Named(BTreeSet<String>),
}

impl Default for Operators {
    fn default() -> Self {
        Self::Named(BTreeSet::new())
    }
}

impl Operators {
    /// Parses the setting's value (see the module docs).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "*" {
            return Ok(Self::Anyone);
        }
        let mut names = BTreeSet::new();
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return Err("* means anyone and must stand alone".into());
            }
            if name.chars().any(char::is_whitespace) {
                return Err(format!(
                    "{name:?} is not a principal name (no spaces; separate names with commas)"
                ));
            }
            names.insert(name.to_lowercase());
        }
        Ok(Self::Named(names))
    }

    /// The operators as they can be trusted: named principals only when App Service
    /// Authentication is on (`auth_enabled`, from [`AUTH_ENABLED_VARIABLE`]).
    pub fn trusted(self, auth_enabled: bool) -> Self {
        match self {
            Self::Named(names) if !names.is_empty() && !auth_enabled => {
                tracing::warn!(
                    "ORDERGRID_OPERATORS names principals, but App Service Authentication is off \
                     ({AUTH_ENABLED_VARIABLE} is not True): anyone could send {PRINCIPAL_NAME_HEADER}, \
                     so nobody may open the operators' board"
                );
                Self::default()
            }
            other => other,
        }
    }

    /// Whether the request's principal (`None` when the header is absent) is an operator.
    pub fn admits(&self, principal: Option<&str>) -> bool {
        match self {
            Self::Anyone => true,
            Self::Named(names) => {
                principal.is_some_and(|p| names.contains(&p.trim().to_lowercase()))
            }
        }
    }

    /// For logs: never lists the names.
    pub fn describe(&self) -> String {
        match self {
            Self::Anyone => "anyone".into(),
            Self::Named(names) if names.is_empty() => "nobody".into(),
            Self::Named(names) => format!("{} named principal(s)", names.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_only_where_app_service_authentication_strips_the_header() {
        let named = Operators::parse("ops@shop.example").unwrap();
        assert!(
            !named
                .clone()
                .trusted(false)
                .admits(Some("ops@shop.example"))
        );
        assert!(named.trusted(true).admits(Some("ops@shop.example")));
        assert_eq!(Operators::Anyone.trusted(false), Operators::Anyone);
    }

    #[test]
    fn star_admits_anyone_even_without_a_header() {
        let ops = Operators::parse(" * ").unwrap();
        assert!(ops.admits(None));
        assert!(ops.admits(Some("someone")));
    }

    #[test]
    fn empty_admits_nobody() {
        for text in ["", "  ", ",,"] {
            let ops = Operators::parse(text).unwrap();
            assert!(!ops.admits(None), "{text:?}");
            assert!(!ops.admits(Some("ops@shop.example")), "{text:?}");
            assert_eq!(ops.describe(), "nobody");
        }
        assert_eq!(Operators::default(), Operators::parse("").unwrap());
    }

    #[test]
    fn names_match_ignoring_case_and_nothing_else() {
        let ops = Operators::parse("Ops@Shop.example, lead@shop.example").unwrap();
        assert!(ops.admits(Some("ops@shop.example")));
        assert!(ops.admits(Some("LEAD@SHOP.EXAMPLE")));
        assert!(!ops.admits(Some("ops@shop.example.evil")));
        assert!(!ops.admits(Some("")));
        assert!(!ops.admits(None));
        assert_eq!(ops.describe(), "2 named principal(s)");
    }

    #[test]
    fn a_star_among_names_and_names_with_spaces_are_refused() {
        assert!(
            Operators::parse("ops@shop.example,*")
                .unwrap_err()
                .contains("stand alone")
        );
        assert!(
            Operators::parse("ops shop")
                .unwrap_err()
                .contains("separate names with commas")
        );
    }
}
