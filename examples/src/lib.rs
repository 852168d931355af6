//! Runnable microservice examples built on the Herald SDK, and what they
//! share.
//!
//! Three services talk through a broker in the [`NAMESPACE`] namespace:
//!
//! - `orders` (`services/orders.rs`) asks billing for the first order's
//!   invoice ([`INVOICE_CREATE`], request/reply), then emits
//!   [`ORDER_CREATED`] for each order and exits;
//! - `billing` (`services/billing.rs`, run two copies) handles each
//!   [`ORDER_CREATED`] in the queue group [`BILLING_GROUP`], so every order
//!   is billed by exactly one copy, emits [`ORDER_BILLED`], and answers
//!   [`INVOICE_CREATE`] requests;
//! - `notifier` (`services/notifier.rs`) subscribes to the pattern
//!   [`ORDER_EVENTS`] and prints every order event.
//!
//! Run each with `cargo run --example <name>` from the workspace root; the
//! broker URL comes from `--url` or `HERALD_URL` (default
//! [`DEFAULT_URL`]).
//!
//! # Layout
//! - [`model`]: the payload types ([`Order`], [`Invoice`], [`OrderRef`]).
//! - [`line`](mod@line): [`Line`], the machine-readable lines the services print on
//!   stdout (logs go to stderr), which the tests parse.
//! - [`service`]: what every service does the same way: [`BrokerArgs`]
//!   (the broker URL), logging, waiting for Ctrl-C or SIGTERM.

pub mod line;
pub mod model;
pub mod service;

pub use line::Line;
pub use model::{Invoice, InvoiceError, Order, OrderRef};
pub use service::{BrokerArgs, init_logging, shutdown_signal};

/// The namespace all three services use.
pub const NAMESPACE: &str = "/shop";
/// Emitted by `orders` for each new order (payload: [`Order`]).
pub const ORDER_CREATED: &str = "order.created";
/// Emitted by `billing` once it billed an order (payload: [`Invoice`]).
pub const ORDER_BILLED: &str = "order.billed";
/// The pattern `notifier` subscribes to: every order event.
pub const ORDER_EVENTS: &str = "order.>";
/// Request answered by `billing`: an [`Order`] in, its [`Invoice`] out.
pub const INVOICE_CREATE: &str = "invoice.create";
/// The queue group the `billing` copies share.
pub const BILLING_GROUP: &str = "billing";
/// The broker URL used when neither `--url` nor `HERALD_URL` is set.
pub const DEFAULT_URL: &str = "ws://127.0.0.1:7400";
