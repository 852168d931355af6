//! `herald request`: send a request to one responder and print its reply.

use std::io::Write;

use herald_client::Error as ClientError;
use herald_protocol::names::{validate_event, validate_namespace};

use crate::args::{GlobalArgs, RequestArgs};
use crate::commands::in_namespace;
use crate::convert::{AsJson, parse_json};
use crate::error::CliError;
use crate::output::Output;
use crate::session::Session;

/// Runs `herald request`.
pub async fn run<W: Write>(
    global: &GlobalArgs,
    args: &RequestArgs,
    out: &mut Output<W>,
) -> Result<(), CliError> {
    validate_namespace(&args.namespace)?;
    validate_event(&args.event)?;
    let payload = parse_json(&args.json)?;

    let session = Session::connect(global).await?;
    let answer = session
        .namespace(&args.namespace)
        .request::<_, rmpv::Value>(&args.event, &payload, *args.timeout)
        .await;
    session.close().await;
    let reply = answer.map_err(|error| request_error(args, error))?;
    out.json_line(&AsJson(&reply))
}

/// The error for a failed request: its three outcomes get their own.
fn request_error(args: &RequestArgs, error: ClientError) -> CliError {
    match error {
        ClientError::NoResponders => CliError::NoResponders {
            namespace: args.namespace.clone(),
            event: args.event.clone(),
        },
        ClientError::Timeout => CliError::Timeout {
            namespace: args.namespace.clone(),
            event: args.event.clone(),
            timeout: *args.timeout,
        },
        ClientError::Remote(message) => CliError::ErrorReply(message),
        other => CliError::client(
            format!("requesting {}", in_namespace(&args.event, &args.namespace)),
            other,
        ),
    }
}
