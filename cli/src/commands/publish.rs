//! `herald pub`: emit an event (or several) and report how many receivers
//! the broker reached.

use std::io::Write;

use herald_protocol::names::{validate_event, validate_namespace, validate_room};

use crate::args::{GlobalArgs, PubArgs};
use crate::commands::in_namespace;
use crate::convert::parse_json;
use crate::error::CliError;
use crate::output::Output;
use crate::session::Session;

/// Runs `herald pub`.
pub async fn run<W: Write>(
    global: &GlobalArgs,
    args: &PubArgs,
    out: &mut Output<W>,
) -> Result<(), CliError> {
    validate_namespace(&args.namespace)?;
    validate_event(&args.event)?;
    if let Some(room) = &args.room {
        validate_room(room)?;
    }
    let payload = parse_json(&args.json)?;

    let session = Session::connect(global).await?;
    let namespace = session.namespace(&args.namespace);
    let mut receivers: u64 = 0;
    for _ in 0..args.repeat {
        let acked = match &args.room {
            Some(room) => {
                namespace
                    .to(room.as_str())
                    .emit_acked(&args.event, &payload)
                    .await
            }
            None => namespace.emit_acked(&args.event, &payload).await,
        };
        let reached = acked.map_err(|e| {
            CliError::client(
                format!("publishing {}", in_namespace(&args.event, &args.namespace)),
                e,
            )
        })?;
        receivers = receivers.saturating_add(reached);
    }
    let printed = out.text_line(&summary(args.repeat, receivers));
    session.close().await;
    printed
}

/// `published 1 event to 3 receivers`, or for several events
/// `published 5 events to 15 receivers in total`.
pub fn summary(events: u64, receivers: u64) -> String {
    let noun = if receivers == 1 {
        "receiver"
    } else {
        "receivers"
    };
    if events == 1 {
        format!("published 1 event to {receivers} {noun}")
    } else {
        format!("published {events} events to {receivers} {noun} in total")
    }
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summaries_read_well() {
        assert_eq!(summary(1, 0), "published 1 event to 0 receivers");
        assert_eq!(summary(1, 1), "published 1 event to 1 receiver");
        assert_eq!(summary(1, 3), "published 1 event to 3 receivers");
        assert_eq!(
            summary(5, 15),
            "published 5 events to 15 receivers in total"
        );
    }
}
