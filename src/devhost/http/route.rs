//! HTTP trigger routes as the Functions host matches them: ASP.NET Core route templates under the
//! route prefix (host.json `extensions.http.routePrefix`, default `api`; `""` for none), built and
//! ordered by the HTTP extension's `WebJobsRouteBuilder` (Azure/azure-webjobs-sdk-extensions
//! `src/WebJobs.Extensions.Http/WebJobsRouteBuilder.cs`: the template is `prefix + '/' + route`,
//! and routes are tried most specific first, `RouteComparison`).
//!
//! What a template may hold here: literal segments (matched ignoring case, as ASP.NET does),
//! whole-segment parameters `{name}`, optional `{name?}`, defaults `{name=value}`, inline
//! constraints `{id:int}` (`int`, `long`, `bool`, `guid`, `alpha`, `double`, `float`, `decimal`,
//! `minlength(n)`, `maxlength(n)`, `length(n)`, `length(a,b)`, `min(n)`, `max(n)`, `range(a,b)`),
//! and a trailing catch-all `{*path}` / `{**path}`. Complex segments (`{a}.{b}`) and other
//! constraints are refused with a message (ASP.NET supports them; the stand-in does not).
//!
//! Route values (the invocation's `Params`): each matched parameter's decoded text; an optional
//! parameter without a default that was not in the path is `null` (the host's
//! `FunctionInvocationMiddleware` adds it so); a catch-all that matched nothing is absent.
//! Kestrel decodes the path before routing except `%2F`, which stays as it was, so a single
//! parameter never holds a `/` (a catch-all does, from the segments it spans).

use std::cmp::Ordering;

/// One segment of a parsed template.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Parameter(Parameter),
}

#[derive(Debug, Clone, PartialEq)]
struct Parameter {
    name: String,
    optional: bool,
    catch_all: bool,
    default: Option<String>,
    constraints: Vec<Constraint>,
}

#[derive(Debug, Clone, PartialEq)]
enum Constraint {
    Int,
    Long,
    Bool,
    Guid,
    Alpha,
    Number,
    MinLength(usize),
    MaxLength(usize),
    Length(usize, usize),
    Min(i64),
    Max(i64),
    Range(i64, i64),
}

/// A parsed route template, prefix included.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// Route values: parameter name → value (`None` for an optional parameter that was absent).
pub type RouteValues = Vec<(String, Option<String>)>;

impl RouteTemplate {
    /// `prefix + '/' + route` (just `route` when the prefix is empty), parsed.
    pub fn parse(prefix: &str, route: &str) -> Result<Self, String> {
        let prefix = prefix.trim_matches('/');
        let route = route.trim_start_matches('/');
        let text = if prefix.is_empty() {
            route.to_owned()
        } else {
            format!("{prefix}/{route}")
        };
        let mut segments = Vec::new();
        let parts: Vec<&str> = text.trim_end_matches('/').split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            if part.is_empty() {
                if parts.len() == 1 {
                    break; // the empty template: only "/" matches
                }
                return Err(format!(
                    "the route template {text:?} has an empty segment (\"//\")"
                ));
            }
            let segment = if let Some(inner) =
                part.strip_prefix('{').and_then(|p| p.strip_suffix('}'))
            {
                if inner.contains(['{', '}']) {
                    return Err(format!(
                        "the route template {text:?}: segment {part:?} holds more than one parameter, which the stand-in does not support"
                    ));
                }
                Segment::Parameter(parameter(inner, &text)?)
            } else if part.contains(['{', '}']) {
                return Err(format!(
                    "the route template {text:?}: segment {part:?} mixes text and parameters, which the stand-in does not support"
                ));
            } else {
                Segment::Literal((*part).to_owned())
            };
            if let Segment::Parameter(p) = &segment
                && p.catch_all
                && i + 1 != parts.len()
            {
                return Err(format!(
                    "the route template {text:?}: a catch-all parameter can only be the last segment"
                ));
            }
            segments.push(segment);
        }
        // ASP.NET: an optional parameter may only be followed by optional ones.
        let mut seen_optional = false;
        for segment in &segments {
            match segment {
                Segment::Parameter(p) if p.optional || p.default.is_some() || p.catch_all => {
                    seen_optional = true
                }
                _ if seen_optional => {
                    return Err(format!(
                        "the route template {text:?}: an optional parameter must be at the end of the template"
                    ));
                }
                _ => {}
            }
        }
        Ok(Self { text, segments })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The route values if `path` (the request path, still percent-encoded) matches.
    pub fn matches(&self, path: &str) -> Option<RouteValues> {
        let trimmed = path.trim_start_matches('/');
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        let raw: Vec<&str> = if trimmed.is_empty() {
            Vec::new()
        } else {
            trimmed.split('/').collect()
        };
        let mut values = Vec::new();
        let mut i = 0;
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => {
                    let got = decode_segment(raw.get(i)?);
                    if !got.eq_ignore_ascii_case(text) {
                        return None;
                    }
                    i += 1;
                }
                Segment::Parameter(p) if p.catch_all => {
                    if i < raw.len() {
                        let rest: Vec<String> =
                            raw[i..].iter().map(|s| decode_segment(s)).collect();
                        values.push((p.name.clone(), Some(rest.join("/"))));
                        i = raw.len();
                    } else if let Some(default) = &p.default {
                        values.push((p.name.clone(), Some(default.clone())));
                    }
                }
                Segment::Parameter(p) => match raw.get(i) {
                    Some(text) => {
                        let value = decode_segment(text);
                        if !p.constraints.iter().all(|c| c.accepts(&value)) {
                            return None;
                        }
                        values.push((p.name.clone(), Some(value)));
                        i += 1;
                    }
                    None => match (&p.default, p.optional) {
                        (Some(default), _) => values.push((p.name.clone(), Some(default.clone()))),
                        (None, true) => values.push((p.name.clone(), None)),
                        (None, false) => return None,
                    },
                },
            }
        }
        (i == raw.len()).then_some(values)
    }
}

/// `WebJobsRouteBuilder.RouteComparison`: segment by segment, a literal before a parameter, a
/// parameter with more inline constraints before one with fewer, literals in ordinal
/// case-insensitive order; a longer template before its prefix.
pub fn precedence(x: &RouteTemplate, y: &RouteTemplate) -> Ordering {
    for (i, xs) in x.segments.iter().enumerate() {
        let Some(ys) = y.segments.get(i) else {
            return Ordering::Less;
        };
        match (xs, ys) {
            (Segment::Literal(_), Segment::Parameter(_)) => return Ordering::Less,
            (Segment::Parameter(_), Segment::Literal(_)) => return Ordering::Greater,
            (Segment::Parameter(a), Segment::Parameter(b)) => {
                match b.constraints.len().cmp(&a.constraints.len()) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
            (Segment::Literal(a), Segment::Literal(b)) => {
                match a.to_ascii_uppercase().cmp(&b.to_ascii_uppercase()) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
        }
    }
    if y.segments.len() > x.segments.len() {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn parameter(inner: &str, template: &str) -> Result<Parameter, String> {
    let (catch_all, inner) = match inner.strip_prefix("**").or_else(|| inner.strip_prefix('*')) {
        Some(rest) => (true, rest),
        None => (false, inner),
    };
    let (inner, default) = match inner.split_once('=') {
        Some((head, default)) => (head, Some(default.to_owned())),
        None => (inner, None),
    };
    let (inner, optional) = match inner.strip_suffix('?') {
        Some(head) => (head, true),
        None => (inner, false),
    };
    let mut parts = inner.split(':');
    let name = parts.next().unwrap_or("").trim().to_owned();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "the route template {template:?}: {inner:?} is not a parameter name"
        ));
    }
    if optional && (catch_all || default.is_some()) {
        return Err(format!(
            "the route template {template:?}: parameter {name:?} cannot be optional and also a catch-all or have a default"
        ));
    }
    let constraints = parts
        .map(|c| Constraint::parse(c).ok_or_else(|| {
            format!(
                "the route template {template:?}: the constraint {c:?} of parameter {name:?} is not one the stand-in knows (int, long, bool, guid, alpha, double, float, decimal, minlength, maxlength, length, min, max, range)"
            )
        }))
        .collect::<Result<_, _>>()?;
    Ok(Parameter {
        name,
        optional,
        catch_all,
        default,
        constraints,
    })
}

impl Constraint {
    fn parse(text: &str) -> Option<Self> {
        let (name, args) = match text.split_once('(') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(')')?)),
            None => (text, None),
        };
        let numbers = |args: Option<&str>| -> Option<Vec<i64>> {
            args?.split(',').map(|a| a.trim().parse().ok()).collect()
        };
        Some(match (name.to_ascii_lowercase().as_str(), args) {
            ("int", None) => Self::Int,
            ("long", None) => Self::Long,
            ("bool", None) => Self::Bool,
            ("guid", None) => Self::Guid,
            ("alpha", None) => Self::Alpha,
            ("double" | "float" | "decimal", None) => Self::Number,
            ("minlength", a) => Self::MinLength(usize::try_from(*numbers(a)?.first()?).ok()?),
            ("maxlength", a) => Self::MaxLength(usize::try_from(*numbers(a)?.first()?).ok()?),
            ("length", a) => match numbers(a)?.as_slice() {
                [n] => Self::Length(usize::try_from(*n).ok()?, usize::try_from(*n).ok()?),
                [lo, hi] => Self::Length(usize::try_from(*lo).ok()?, usize::try_from(*hi).ok()?),
                _ => return None,
            },
            ("min", a) => Self::Min(*numbers(a)?.first()?),
            ("max", a) => Self::Max(*numbers(a)?.first()?),
            ("range", a) => match numbers(a)?.as_slice() {
                [lo, hi] => Self::Range(*lo, *hi),
                _ => return None,
            },
            _ => return None,
        })
    }

    /// As ASP.NET's constraints check a value (invariant culture; `int.TryParse` and friends
    /// allow surrounding white space and a sign).
    fn accepts(&self, value: &str) -> bool {
        let integer = || value.trim().parse::<i64>().ok();
        let chars = value.chars().count();
        match self {
            Self::Int => value.trim().parse::<i32>().is_ok(),
            Self::Long => integer().is_some(),
            Self::Bool => {
                value.trim().eq_ignore_ascii_case("true")
                    || value.trim().eq_ignore_ascii_case("false")
            }
            Self::Guid => uuid::Uuid::parse_str(
                value
                    .trim()
                    .trim_start_matches(['{', '('])
                    .trim_end_matches(['}', ')']),
            )
            .is_ok(),
            Self::Alpha => !value.is_empty() && value.chars().all(|c| c.is_ascii_alphabetic()),
            Self::Number => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
            Self::MinLength(n) => chars >= *n,
            Self::MaxLength(n) => chars <= *n,
            Self::Length(lo, hi) => (*lo..=*hi).contains(&chars),
            Self::Min(n) => integer().is_some_and(|v| v >= *n),
            Self::Max(n) => integer().is_some_and(|v| v <= *n),
            Self::Range(lo, hi) => integer().is_some_and(|v| (*lo..=*hi).contains(&v)),
        }
    }
}

/// A path segment as Kestrel hands it to routing: percent-decoded, except `%2F` (a `/` that is
/// data, not a separator), which stays encoded.
fn decode_segment(raw: &str) -> String {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find("%2F").or_else(|| rest.find("%2f")) {
        out += &percent_encoding::percent_decode_str(&rest[..at]).decode_utf8_lossy();
        out += &rest[at..at + 3];
        rest = &rest[at + 3..];
    }
    out += &percent_encoding::percent_decode_str(rest).decode_utf8_lossy();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(template: &str) -> RouteTemplate {
        RouteTemplate::parse("api", template).unwrap()
    }

    fn values(pairs: &[(&str, Option<&str>)]) -> RouteValues {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_owned)))
            .collect()
    }

    #[test]
    fn literals_match_ignoring_case_and_a_trailing_slash() {
        let r = route("negotiate");
        assert_eq!(r.text(), "api/negotiate");
        assert_eq!(r.matches("/api/negotiate"), Some(vec![]));
        assert_eq!(r.matches("/API/Negotiate/"), Some(vec![]));
        assert_eq!(r.matches("/api/negotiate/x"), None);
        assert_eq!(r.matches("/api"), None);
        let bare = RouteTemplate::parse("", "negotiate").unwrap();
        assert_eq!(bare.matches("/negotiate"), Some(vec![]));
        assert_eq!(bare.matches("/api/negotiate"), None);
    }

    #[test]
    fn parameters_optional_defaults_and_catch_alls() {
        let r = route("orders/{orderId}/status");
        assert_eq!(
            r.matches("/api/orders/a%20b/status"),
            Some(values(&[("orderId", Some("a b"))]))
        );
        assert_eq!(
            r.matches("/api/orders/a%2Fb/status"),
            Some(values(&[("orderId", Some("a%2Fb"))])),
            "an encoded slash stays encoded, as Kestrel leaves it"
        );
        let optional = route("items/{id?}");
        assert_eq!(
            optional.matches("/api/items"),
            Some(values(&[("id", None)]))
        );
        assert_eq!(
            optional.matches("/api/items/7"),
            Some(values(&[("id", Some("7"))]))
        );
        let default = route("items/{page=1}");
        assert_eq!(
            default.matches("/api/items"),
            Some(values(&[("page", Some("1"))]))
        );
        let rest = route("web/{*path}");
        assert_eq!(
            rest.matches("/api/web/scripts/app%20x.js"),
            Some(values(&[("path", Some("scripts/app x.js"))]))
        );
        assert_eq!(
            rest.matches("/api/web"),
            Some(vec![]),
            "an empty catch-all is absent"
        );
    }

    #[test]
    fn constraints_decide_whether_a_route_matches() {
        let r = route("orders/{id:int}");
        assert!(r.matches("/api/orders/42").is_some());
        assert!(r.matches("/api/orders/-42").is_some());
        assert!(
            r.matches("/api/orders/99999999999").is_none(),
            "beyond Int32"
        );
        assert!(r.matches("/api/orders/abc").is_none());
        let guid = route("x/{id:guid}");
        assert!(
            guid.matches("/api/x/3f2504e0-4f89-11d3-9a0c-0305e82c3301")
                .is_some()
        );
        assert!(guid.matches("/api/x/nope").is_none());
        let len = route("x/{code:alpha:length(2,3)}");
        assert!(len.matches("/api/x/ab").is_some());
        assert!(len.matches("/api/x/abcd").is_none());
        assert!(len.matches("/api/x/a1").is_none());
        assert!(route("x/{n:range(1,5)}").matches("/api/x/6").is_none());
    }

    #[test]
    fn templates_the_stand_in_cannot_serve_are_refused_with_a_reason() {
        for (template, why) in [
            ("x/{a}.{b}", "more than one parameter"),
            ("x/a{b}", "mixes text"),
            ("x/{id:regex(^a$)}", "not one the stand-in knows"),
            ("{*rest}/x", "last segment"),
            ("{a?}/x", "at the end"),
            ("x//y", "empty segment"),
        ] {
            let err = RouteTemplate::parse("api", template).unwrap_err();
            assert!(err.contains(why), "{template}: {err}");
        }
    }

    #[test]
    fn routes_are_tried_most_specific_first() {
        let mut routes = [
            route("web/{*path}"),
            route("{name}"),
            route("orders/{id}"),
            route("orders/{id:int}"),
            route("orders/{id}/status"),
            route("orders/count"),
        ];
        routes.sort_by(precedence);
        let order: Vec<&str> = routes.iter().map(RouteTemplate::text).collect();
        assert_eq!(
            order,
            [
                "api/orders/count",
                "api/orders/{id:int}",
                "api/orders/{id}/status",
                "api/orders/{id}",
                "api/web/{*path}",
                "api/{name}",
            ]
        );
    }
}
