//! The notifier service: subscribes to the pattern `order.>` and prints
//! `notified <event> <order id>` for every order event (`order.created`
//! from orders, `order.billed` from billing, and any later one).
//!
//! Every event under `order.>` carries an `order_id`; the notifier decodes
//! just that ([`OrderRef`]). Prints `ready` once the subscription is
//! acknowledged, then runs until Ctrl-C or SIGTERM.
//!
//! ```sh
//! cargo run --example notifier
//! ```

use clap::Parser;
use herald_client::Event;
use herald_examples::{
    BrokerArgs, Line, NAMESPACE, ORDER_EVENTS, OrderRef, init_logging, shutdown_signal,
};
use tracing::info;

/// Prints every order event (pattern "order.>").
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    let args = Args::parse();
    let client = args.broker.connect("notifier").await?;
    client.on_error(|event| tracing::warn!(?event, "client error"));
    let shop = client.of(NAMESPACE);

    shop.on_event(ORDER_EVENTS, |event: Event<OrderRef>| async move {
        println!(
            "{}",
            Line::Notified {
                event: event.event,
                order_id: event.data.order_id,
            }
        );
    })
    .await?;
    println!("{}", Line::Ready);

    shutdown_signal().await;
    info!("stopping");
    client.close().await?;
    Ok(())
}
