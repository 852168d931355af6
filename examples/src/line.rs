//! [`Line`]: what the example services print on stdout, one line per
//! thing that happened, in a fixed format that tests (and shell scripts)
//! can parse back with [`str::parse`]. Logs go to stderr.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// One machine-readable stdout line of an example service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `ready`: the service's subscriptions are acknowledged by the
    /// broker; events emitted from now on reach it.
    Ready,
    /// `created order 7`: `orders` emitted `order.created` and the
    /// broker acknowledged it.
    Created {
        /// The order.
        order_id: u64,
    },
    /// `billed order 7`: a `billing` copy billed the order.
    Billed {
        /// The order.
        order_id: u64,
    },
    /// `notified order.created 7`: `notifier` saw an order event.
    Notified {
        /// The event's name.
        event: String,
        /// The order it is about.
        order_id: u64,
    },
    /// `invoice INV-000001 for order 1`: `orders` got a reply to
    /// `invoice.create`.
    Invoice {
        /// The invoice number.
        number: String,
        /// The order it bills.
        order_id: u64,
    },
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Ready => f.write_str("ready"),
            Line::Created { order_id } => write!(f, "created order {order_id}"),
            Line::Billed { order_id } => write!(f, "billed order {order_id}"),
            Line::Notified { event, order_id } => write!(f, "notified {event} {order_id}"),
            Line::Invoice { number, order_id } => {
                write!(f, "invoice {number} for order {order_id}")
            }
        }
    }
}

/// A line that is not one of [`Line`]'s formats.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an example service line: {0:?}")]
pub struct ParseLineError(String);

impl FromStr for Line {
    type Err = ParseLineError;

    fn from_str(text: &str) -> Result<Line, ParseLineError> {
        let fail = || ParseLineError(text.to_owned());
        let id = |token: &str| token.parse::<u64>().map_err(|_| fail());
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.as_slice() {
            ["ready"] => Ok(Line::Ready),
            ["created", "order", order_id] => Ok(Line::Created {
                order_id: id(order_id)?,
            }),
            ["billed", "order", order_id] => Ok(Line::Billed {
                order_id: id(order_id)?,
            }),
            ["notified", event, order_id] => Ok(Line::Notified {
                event: (*event).to_owned(),
                order_id: id(order_id)?,
            }),
            ["invoice", number, "for", "order", order_id] => Ok(Line::Invoice {
                number: (*number).to_owned(),
                order_id: id(order_id)?,
            }),
            _ => Err(fail()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_parses_back_to_itself() {
        let lines = [
            Line::Ready,
            Line::Created { order_id: 1 },
            Line::Billed { order_id: 22 },
            Line::Notified {
                event: "order.billed".into(),
                order_id: 333,
            },
            Line::Invoice {
                number: "INV-000001".into(),
                order_id: 1,
            },
        ];
        for line in lines {
            let text = line.to_string();
            assert_eq!(text.parse::<Line>(), Ok(line), "{text:?}");
        }
        assert_eq!("billed order 7".parse(), Ok(Line::Billed { order_id: 7 }));
    }

    #[test]
    fn other_text_is_refused_quoting_it() {
        for text in [
            "",
            "billed order",
            "billed order seven",
            "ready now",
            "hello",
        ] {
            let error = text.parse::<Line>().expect_err("not a service line");
            assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
        }
    }
}
