//! `herald sub`: subscribe (optionally in a queue group, optionally
//! joining rooms) and print each event as one JSON line.

use std::io::Write;

use herald_client::Event;
use herald_protocol::Pattern;
use herald_protocol::names::{validate_group, validate_namespace, validate_room};
use tokio::sync::mpsc;

use crate::args::{GlobalArgs, SubArgs};
use crate::commands::{Interrupt, in_namespace, take_until_done};
use crate::error::CliError;
use crate::output::{EventLine, Output};
use crate::session::Session;

/// Events handed from the SDK's handler task to the printing loop; when it
/// is full the handler waits, and the SDK stops reading the socket.
const EVENT_QUEUE: usize = 256;

/// Runs `herald sub`.
pub async fn run<W: Write>(
    global: &GlobalArgs,
    args: &SubArgs,
    out: &mut Output<W>,
) -> Result<(), CliError> {
    validate_namespace(&args.namespace)?;
    Pattern::parse(&args.pattern)?;
    if let Some(group) = &args.queue {
        validate_group(group)?;
    }
    for room in &args.room {
        validate_room(room)?;
    }

    let session = Session::connect(global).await?;
    let namespace = session.namespace(&args.namespace);
    for room in &args.room {
        namespace.join(room).await.map_err(|e| {
            CliError::client(
                format!("joining room {}", in_namespace(room, &args.namespace)),
                e,
            )
        })?;
    }
    let (tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let forward = move |event: Event<rmpv::Value>| {
        let tx = tx.clone();
        async move {
            // Closed only once the printing loop is done.
            let _ = tx.send(event).await;
        }
    };
    let subscribed = match &args.queue {
        Some(group) => {
            namespace
                .on_queue_event(&args.pattern, group, forward)
                .await
        }
        None => namespace.on_event(&args.pattern, forward).await,
    };
    let _subscription = subscribed.map_err(|e| {
        CliError::client(
            format!(
                "subscribing to {}",
                in_namespace(&args.pattern, &args.namespace)
            ),
            e,
        )
    })?;
    let mut interrupt = Interrupt::listen();
    eprintln!("herald: subscribed to {}", describe(args));

    // Until --count, Ctrl-C, or a lost connection.
    let printed = take_until_done(&mut events, args.count, &mut interrupt, &session, |event| {
        out.json_line(&EventLine::from(event))
    })
    .await;
    session.close().await;
    printed
}

/// What was subscribed, for the note on stderr.
fn describe(args: &SubArgs) -> String {
    let mut text = in_namespace(&args.pattern, &args.namespace);
    if let Some(group) = &args.queue {
        text.push_str(&format!(" (queue group {group:?})"));
    }
    for room in &args.room {
        text.push_str(&format!(" (room {room:?})"));
    }
    text
}
