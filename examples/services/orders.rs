//! The orders service: asks billing for the first order's invoice
//! (request/reply), then emits `order.created` for `--count` orders and
//! exits.
//!
//! Each emit waits for the broker's acknowledgement, so when `orders`
//! exits every order has been routed; it prints `created order N` per
//! order and `invoice INV-… for order 1` for the reply. With
//! `--wait-for-billing 30s` it first retries the invoice request until a
//! billing copy answers (useful when everything starts at once, as in
//! Docker Compose).
//!
//! ```sh
//! cargo run --example orders -- --count 20 --interval 200ms
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use herald_client::{Error, Namespace};
use herald_examples::{
    BrokerArgs, INVOICE_CREATE, Invoice, Line, NAMESPACE, ORDER_CREATED, Order, init_logging,
};
use tracing::{info, warn};

/// How long billing has to answer one invoice request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between invoice requests while no billing copy answers.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Emits order.created for a number of orders, then exits.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// How many orders to emit (numbered from 1).
    #[arg(long, env = "ORDERS_COUNT", default_value_t = 5)]
    count: u64,
    /// Pause between two orders, e.g. "200ms".
    #[arg(long, env = "ORDERS_INTERVAL", default_value = "0s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Retry the first invoice request this long while no billing copy
    /// answers, e.g. "30s" ("0s": ask once).
    #[arg(long, env = "ORDERS_WAIT_FOR_BILLING", default_value = "0s", value_parser = humantime::parse_duration)]
    wait_for_billing: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let client = args.broker.connect("orders").await?;
    let shop = client.of(NAMESPACE);

    match request_invoice(&shop, &Order::sample(1), args.wait_for_billing).await {
        Ok(invoice) => println!(
            "{}",
            Line::Invoice {
                number: invoice.number,
                order_id: invoice.order_id,
            }
        ),
        Err(Error::NoResponders) => {
            warn!(
                "no billing service answers {INVOICE_CREATE}; start `cargo run --example billing`"
            )
        }
        Err(error) => return Err(error.into()),
    }

    for order_id in 1..=args.count {
        let order = Order::sample(order_id);
        let receivers = shop.emit_acked(ORDER_CREATED, &order).await?;
        println!("{}", Line::Created { order_id });
        info!(order_id, receivers, "order created");
        if order_id < args.count && !args.interval.is_zero() {
            tokio::time::sleep(args.interval).await;
        }
    }

    client.close().await?;
    Ok(())
}

/// Asks billing for `order`'s invoice, retrying while nobody answers
/// until `wait` has passed.
async fn request_invoice(
    shop: &Namespace,
    order: &Order,
    wait: Duration,
) -> Result<Invoice, Error> {
    let deadline = Instant::now() + wait;
    loop {
        match shop.request(INVOICE_CREATE, order, REQUEST_TIMEOUT).await {
            Err(Error::NoResponders) if Instant::now() < deadline => {
                info!("waiting for a billing service to answer {INVOICE_CREATE}");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            answer => return answer,
        }
    }
}
