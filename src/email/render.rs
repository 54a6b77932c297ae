//! Renders the order confirmation (plain text and HTML) from the templates in `templates/`,
//! compiled into the binary by askama: nothing is parsed at start-up, and HTML is escaped.
//! A message sent within a trace carries its context in a `Traceparent` header (W3C's value),
//! so a mail found in an inbox leads back to the order's trace.

use askama::Template;
use lettre::Message;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, header};

use crate::domain::NewOrder;
use crate::trace::TraceParent;

/// `Traceparent: 00-<trace id>-<span id>-<flags>`.
#[derive(Debug, Clone)]
struct TraceparentHeader(String);

impl Header for TraceparentHeader {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Traceparent")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// A rendered message ready for a transport, with what transports need to name it.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    pub order_id: String,
    pub message_id: String,
    pub message: Message,
}

struct Line {
    sku: String,
    name: String,
    quantity: u32,
    unit_price: String,
    total: String,
}

#[derive(Template)]
#[template(path = "confirmation.txt")]
struct TextBody<'a> {
    order_id: &'a str,
    customer_id: &'a str,
    total: &'a str,
    lines: &'a [Line],
}

#[derive(Template)]
#[template(path = "confirmation.html")]
struct HtmlBody<'a> {
    order_id: &'a str,
    customer_id: &'a str,
    total: &'a str,
    lines: &'a [Line],
}

/// Builds confirmation messages from a fixed sender.
#[derive(Debug, Clone)]
pub struct ConfirmationRenderer {
    from: Mailbox,
}

impl ConfirmationRenderer {
    pub fn new(from: Mailbox) -> Self {
        Self { from }
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// The confirmation of `order`, within `trace` when the sender has one.
    pub fn render(
        &self,
        order: &NewOrder,
        trace: Option<TraceParent>,
    ) -> Result<OutgoingEmail, String> {
        let currency = order.order_value().currency();
        let lines: Vec<Line> = order
            .items()
            .iter()
            .map(|item| Line {
                sku: item.sku().to_string(),
                name: item.name().unwrap_or_default().to_owned(),
                quantity: item.quantity(),
                unit_price: item.unit_price().to_string(),
                total: format!("{} {currency}", item.line_total()),
            })
            .collect();
        let total = order.order_value().to_string();
        let order_id = order.order_id().as_str();
        let customer_id = order.customer_id().as_str();
        let text = TextBody {
            order_id,
            customer_id,
            total: &total,
            lines: &lines,
        }
        .render()
        .map_err(|e| format!("failed to render the text body: {e}"))?;
        let html = HtmlBody {
            order_id,
            customer_id,
            total: &total,
            lines: &lines,
        }
        .render()
        .map_err(|e| format!("failed to render the HTML body: {e}"))?;
        // A Message-ID derived from the order lets mail systems drop a duplicate, should one
        // ever be sent after a crash between sending and recording it.
        let message_id = format!(
            "<order-{order_id}.confirmation@{}>",
            self.from.email.domain()
        );
        let to = Mailbox::new(None, order.customer_email().as_lettre().clone());
        let mut message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("We received your order {order_id}"))
            .message_id(Some(message_id.clone()))
            .header(header::MIME_VERSION_1_0);
        if let Some(trace) = trace {
            message = message.header(TraceparentHeader(trace.to_string()));
        }
        let message = message
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("failed to build the message: {e}"))?;
        Ok(OutgoingEmail {
            order_id: order_id.to_owned(),
            message_id,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::OrderLimits;

    #[test]
    fn renders_both_parts_with_the_order_details_and_escapes_html() {
        let order = NewOrder::parse(
            r#"{"orderId":"A-1","customerId":"c-9","orderValue":"20.50","currency":"EUR","customerEmail":"x@example.org",
                "items":[{"sku":"SKU-1","name":"<b>Mug</b>","quantity":2,"unitPrice":"10.25"}]}"#,
            &OrderLimits::default(),
        )
        .unwrap();
        let renderer = ConfirmationRenderer::new("Shop <orders@shop.example>".parse().unwrap());
        let trace = TraceParent::root();
        let email = renderer.render(&order, Some(trace)).unwrap();
        let raw = String::from_utf8(email.message.formatted()).unwrap();
        assert!(raw.contains(&format!("Traceparent: {trace}\r\n")), "{raw}");
        assert!(raw.contains("Subject: We received your order A-1"), "{raw}");
        assert!(
            raw.contains("Message-ID: <order-A-1.confirmation@shop.example>"),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("20.50 EUR"));
        let (text_part, html_part) = raw.split_once("Content-Type: text/html").unwrap();
        assert!(
            html_part.contains("&#60;b&#62;Mug&#60;/b&#62;"),
            "HTML part must be escaped: {raw}"
        );
        assert!(!html_part.contains("<b>Mug"), "{raw}");
        assert!(
            text_part.contains("(<b>Mug</b>)"),
            "the text part keeps the name as is"
        );
    }
}
