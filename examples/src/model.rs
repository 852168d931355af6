//! The payloads the example services exchange. The SDK encodes them as
//! MessagePack maps keyed by field name, so a reader may decode only the
//! fields it needs ([`OrderRef`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A customer's order: the payload of `order.created`, and the request
/// of `invoice.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's number, unique per run of `orders`.
    pub order_id: u64,
    /// Who ordered.
    pub customer: String,
    /// What it costs, in cents.
    pub total_cents: u64,
}

impl Order {
    /// A made-up but deterministic order number `order_id`, so runs are
    /// reproducible.
    pub fn sample(order_id: u64) -> Order {
        const CUSTOMERS: [&str; 4] = ["ada", "grace", "edsger", "barbara"];
        let customer = CUSTOMERS[(order_id % CUSTOMERS.len() as u64) as usize];
        Order {
            order_id,
            customer: customer.to_owned(),
            total_cents: 500 + (order_id * 1_237) % 9_500,
        }
    }
}

/// The invoice for one order: the payload of `order.billed`, and the
/// reply to `invoice.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The invoice number, derived from the order number.
    pub number: String,
    /// The order it bills.
    pub order_id: u64,
    /// The amount billed, in cents.
    pub total_cents: u64,
}

/// Why an order cannot be invoiced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvoiceError {
    /// The order costs nothing.
    #[error("order {order_id} has nothing to bill (total is 0)")]
    NothingToBill {
        /// The order.
        order_id: u64,
    },
}

impl Invoice {
    /// The invoice for `order`.
    pub fn for_order(order: &Order) -> Result<Invoice, InvoiceError> {
        if order.total_cents == 0 {
            return Err(InvoiceError::NothingToBill {
                order_id: order.order_id,
            });
        }
        Ok(Invoice {
            number: format!("INV-{:06}", order.order_id),
            order_id: order.order_id,
            total_cents: order.total_cents,
        })
    }
}

/// What every event under `order.>` carries: the order number. The
/// notifier decodes just this, whatever else the event holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    /// The order the event is about.
    pub order_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_bills_its_order() {
        let order = Order::sample(7);
        let invoice = Invoice::for_order(&order).expect("a sample order costs something");
        assert_eq!(invoice.number, "INV-000007");
        assert_eq!(invoice.order_id, 7);
        assert_eq!(invoice.total_cents, order.total_cents);
    }

    #[test]
    fn a_free_order_is_refused_naming_it() {
        let order = Order {
            total_cents: 0,
            ..Order::sample(3)
        };
        let error = Invoice::for_order(&order).expect_err("nothing to bill");
        assert_eq!(
            error.to_string(),
            "order 3 has nothing to bill (total is 0)"
        );
    }
}
