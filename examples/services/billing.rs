//! The billing service: bills every new order exactly once, however many
//! copies run, and prices orders on request.
//!
//! - `order.created` in queue group `billing`: the broker hands each order
//!   to ONE member of the group, so two copies share the work. Each billed
//!   order prints `billed order N` and emits `order.billed` with its
//!   invoice.
//! - `invoice.create` (request/reply): answers an order with its invoice,
//!   or an error the requester sees.
//!
//! Prints `ready` once both subscriptions are acknowledged, then runs
//! until Ctrl-C or SIGTERM.
//!
//! ```sh
//! cargo run --example billing     # in two terminals: a queue group of two
//! ```

use clap::Parser;
use herald_client::Namespace;
use herald_examples::{
    BILLING_GROUP, BrokerArgs, INVOICE_CREATE, Invoice, Line, NAMESPACE, ORDER_BILLED,
    ORDER_CREATED, Order, init_logging, shutdown_signal,
};
use tracing::{info, warn};

/// Bills orders (queue group "billing") and answers invoice.create.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let client = args.broker.connect("billing").await?;
    let shop = client.of(NAMESPACE);

    let publisher = shop.clone();
    shop.on_queue(ORDER_CREATED, BILLING_GROUP, move |order: Order| {
        let publisher = publisher.clone();
        async move { bill(&publisher, order).await }
    })
    .await?;
    shop.on_request(INVOICE_CREATE, |order: Order| async move {
        Invoice::for_order(&order)
    })
    .await?;
    println!("{}", Line::Ready);

    shutdown_signal().await;
    info!("stopping");
    client.close().await?;
    Ok(())
}

/// Bills one order and tells everyone with `order.billed`.
async fn bill(shop: &Namespace, order: Order) {
    let invoice = match Invoice::for_order(&order) {
        Ok(invoice) => invoice,
        Err(error) => {
            warn!(%error, "order not billed");
            return;
        }
    };
    println!(
        "{}",
        Line::Billed {
            order_id: order.order_id
        }
    );
    info!(order_id = order.order_id, invoice = %invoice.number, "billed");
    if let Err(error) = shop.emit(ORDER_BILLED, &invoice).await {
        warn!(%error, order_id = order.order_id, "could not emit order.billed");
    }
}
