//! `herald reply`: an echo responder, answering each request with the
//! request's own payload.

use std::convert::Infallible;
use std::time::Duration;

use herald_protocol::Pattern;
use herald_protocol::names::{validate_group, validate_namespace};
use tokio::sync::mpsc;

use crate::args::{GlobalArgs, ReplyArgs};
use crate::commands::{Interrupt, in_namespace, take_until_done};
use crate::error::CliError;
use crate::session::Session;

/// How long, after the last counted request, the answers still in the
/// handler's queue may take to be handed to the connection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `herald reply`.
pub async fn run(global: &GlobalArgs, args: &ReplyArgs) -> Result<(), CliError> {
    validate_namespace(&args.namespace)?;
    Pattern::parse(&args.event)?;
    if let Some(group) = &args.queue {
        validate_group(group)?;
    }

    let session = Session::connect(global).await?;
    let namespace = session.namespace(&args.namespace);
    // The handler tells the loop below about each request it answers. Only
    // the handler holds senders, so `answered` ends once the SDK has dropped
    // the handler, i.e. after its last reply was queued for sending.
    let (seen, mut answered) = mpsc::channel::<()>(64);
    let echo = move |request: rmpv::Value| {
        let seen = seen.clone();
        async move {
            let _ = seen.send(()).await;
            Ok::<_, Infallible>(request)
        }
    };
    let subscribed = match &args.queue {
        Some(group) => namespace.on_request_queue(&args.event, group, echo).await,
        None => namespace.on_request(&args.event, echo).await,
    };
    let subscription = subscribed.map_err(|e| {
        CliError::client(
            format!(
                "subscribing as responder to {}",
                in_namespace(&args.event, &args.namespace)
            ),
            e,
        )
    })?;
    let group = args
        .queue
        .as_ref()
        .map(|g| format!(" (queue group {g:?})"))
        .unwrap_or_default();
    let mut interrupt = Interrupt::listen();
    eprintln!(
        "herald: ready: answering {}{group}",
        in_namespace(&args.event, &args.namespace)
    );

    // Until --count, Ctrl-C, or a lost connection.
    let outcome = take_until_done(&mut answered, args.count, &mut interrupt, &session, Ok).await;
    if outcome.is_ok() {
        // Stop taking requests, then let the ones already taken be answered.
        // A failed unsubscribe only means the connection is going anyway.
        let _ = subscription.unsubscribe().await;
        let drained = async { while answered.recv().await.is_some() {} };
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
    }
    session.close().await;
    outcome
}
