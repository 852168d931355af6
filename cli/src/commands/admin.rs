//! `herald admin connections|namespaces|tail`: the broker's admin API
//! (PROTOCOL.md §26) from the command line. Plain HTTP/1.1 requests
//! (`Connection: close`) for the listings; the API's stream, a WebSocket,
//! for the tail. Tables by default, the API's JSON with `--json`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::Interrupt;
use crate::args::{AdminArgs, AdminCommand, AdminFilterArgs, AdminTailArgs, GlobalArgs};
use crate::error::CliError;
use crate::output::Output;

/// Largest answer read from the API.
const MAX_ANSWER: u64 = 64 << 20;

fn admin_error(status: Option<u16>, message: impl Into<String>) -> CliError {
    CliError::Admin {
        status,
        message: message.into(),
    }
}

/// `HOST:PORT` of the admin API: `--admin-url`, else that of `--url`.
fn authority(global: &GlobalArgs, args: &AdminArgs) -> Result<String, CliError> {
    let url = args.admin_url.as_deref().unwrap_or(&global.url);
    let rest = ["http://", "ws://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| {
            admin_error(
                Some(400),
                format!(
                    "{url:?}: herald admin speaks plain http:// (or ws://) only; \
                     give --admin-url http://HOST:PORT (for a TLS listener use curl on the API)"
                ),
            )
        })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(admin_error(Some(400), format!("{url:?} names no host")));
    }
    Ok(host.to_owned())
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` of the API; its JSON, or the API's error.
async fn get(global: &GlobalArgs, args: &AdminArgs, path: &str) -> Result<Value, CliError> {
    let host = authority(global, args)?;
    let timeout: Duration = global.connect_timeout.into();
    let auth = args
        .admin_token
        .as_ref()
        .map(|t| format!("Authorization: Bearer {}\r\n", t.expose()))
        .unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n");
    let exchange = async {
        let mut stream = TcpStream::connect(&host).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.take(MAX_ANSWER).read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(timeout * 4, exchange)
        .await
        .map_err(|_| {
            admin_error(
                None,
                format!("no answer from {host} within {:?}", timeout * 4),
            )
        })?
        .map_err(|e| admin_error(None, format!("cannot reach {host}: {e}")))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| admin_error(None, format!("{host} did not answer HTTP")))?;
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if status != 200 {
        let api_message = value["error"]["message"].as_str().map(str::to_owned);
        let message = match (status, api_message) {
            (404, _) if !path.starts_with("/admin/api/connections/") => format!(
                "{path} not found: is [admin] enabled on the broker, and is {host} its console's \
                 listener (server.operator_listen when set)?"
            ),
            (_, Some(message)) => message,
            (status, None) => format!("HTTP {status}"),
        };
        return Err(admin_error(Some(status), message));
    }
    Ok(value)
}

/// Runs one `herald admin` subcommand.
pub async fn run(
    global: &GlobalArgs,
    args: &AdminArgs,
    out: &mut Output<impl std::io::Write>,
) -> Result<(), CliError> {
    match &args.command {
        AdminCommand::Connections(filter) => connections(global, args, filter, out).await,
        AdminCommand::Namespaces => namespaces(global, args, out).await,
        AdminCommand::Tail(tail_args) => tail(global, args, tail_args, out).await,
    }
}

/// Lines of a table: columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut lines = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    lines.extend(rows.iter().map(|r| line(r.clone())));
    lines
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

async fn connections(
    global: &GlobalArgs,
    args: &AdminArgs,
    filter: &AdminFilterArgs,
    out: &mut Output<impl std::io::Write>,
) -> Result<(), CliError> {
    let q = query(&[
        ("namespace", filter.namespace.clone()),
        ("room", filter.room.clone()),
        ("user", filter.user.clone()),
        ("transport", filter.transport.clone()),
        ("client", filter.client.clone()),
        ("limit", filter.limit.map(|l| l.to_string())),
    ]);
    let value = get(global, args, &format!("/admin/api/connections?{q}")).await?;
    if args.json {
        return out.json_line(&value);
    }
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = value["connections"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|c| {
            let list = |key: &str, f: &dyn Fn(&Value) -> String| {
                let items: Vec<String> =
                    c[key].as_array().unwrap_or(&empty).iter().map(f).collect();
                if items.is_empty() {
                    "-".into()
                } else {
                    items.join(",")
                }
            };
            vec![
                text(&c["sid"]),
                text(&c["transport"]),
                text(&c["client"]),
                text(&c["user"]),
                list("namespaces", &|n| {
                    format!("{}({})", text(&n["name"]), n["subscriptions"])
                }),
                list("rooms", &|r| {
                    format!("{}:{}", text(&r["namespace"]), text(&r["room"]))
                }),
                format!("{}/{}", c["queue"]["frames"], c["queue"]["capacity"]),
                text(&c["dropped"]),
            ]
        })
        .collect();
    for line in table(
        &[
            "SESSION",
            "TRANSPORT",
            "CLIENT",
            "USER",
            "NAMESPACES",
            "ROOMS",
            "QUEUE",
            "DROPS",
        ],
        &rows,
    ) {
        out.text_line(&line)?;
    }
    out.text_line(&format!(
        "{} connection(s) on node {}",
        value["total"],
        text(&value["node"])
    ))
}

async fn namespaces(
    global: &GlobalArgs,
    args: &AdminArgs,
    out: &mut Output<impl std::io::Write>,
) -> Result<(), CliError> {
    let value = get(global, args, "/admin/api/namespaces").await?;
    if args.json {
        return out.json_line(&value);
    }
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = value["namespaces"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|n| {
            let rooms: Vec<String> = n["rooms"]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .map(|r| format!("{}({})", text(&r["name"]), r["members"]))
                .collect();
            vec![
                text(&n["name"]),
                text(&n["connections"]),
                text(&n["subscriptions"]),
                if rooms.is_empty() {
                    "-".into()
                } else {
                    rooms.join(",")
                },
            ]
        })
        .collect();
    for line in table(
        &["NAMESPACE", "CONNECTIONS", "SUBSCRIPTIONS", "ROOMS"],
        &rows,
    ) {
        out.text_line(&line)?;
    }
    Ok(())
}

async fn tail(
    global: &GlobalArgs,
    args: &AdminArgs,
    tail: &AdminTailArgs,
    out: &mut Output<impl std::io::Write>,
) -> Result<(), CliError> {
    let q = query(&[
        ("namespace", tail.namespace.clone()),
        ("pattern", tail.pattern.clone()),
    ]);
    // A bad filter is answered 400 before the upgrade: ask over HTTP first
    // to show the API's own message (anything else means "upgrade me").
    let path = format!("/admin/api/stream?{q}");
    match get(global, args, &path).await {
        Err(CliError::Admin {
            status: Some(400),
            message,
        }) if message.contains("WebSocket") => {}
        Err(error) => return Err(error),
        Ok(_) => {}
    }
    let host = authority(global, args)?;
    let mut request = format!("ws://{host}{path}")
        .into_client_request()
        .map_err(|e| admin_error(Some(400), e.to_string()))?;
    if let Some(token) = &args.admin_token {
        let header = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| admin_error(Some(400), "the admin token is not a valid header value"))?;
        request.headers_mut().insert("authorization", header);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| admin_error(None, format!("cannot open the stream at {host}: {e}")))?;
    let mut interrupt = Interrupt::listen();
    let mut announced = false;
    let mut shown = 0u64;
    while tail.count.is_none_or(|count| shown < count) {
        let message = tokio::select! {
            () = interrupt.wait() => break,
            message = ws.next() => message,
        };
        let text_message = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                return Err(admin_error(
                    if reason == "unauthorized" {
                        Some(401)
                    } else {
                        None
                    },
                    format!("the stream closed: {reason}"),
                ));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(admin_error(None, format!("the stream failed: {e}"))),
            None => return Err(admin_error(None, "the stream ended")),
        };
        let value: Value = serde_json::from_str(&text_message).unwrap_or(Value::Null);
        if value["type"] == "open" && !announced {
            announced = true;
            eprintln!(
                "herald: tailing {host} (at most {} events per second, sampled by the broker; Ctrl-C stops)",
                value["tail_rate"]
            );
        }
        if value["type"] != "event" {
            continue;
        }
        shown += 1;
        if args.json {
            out.json_line(&value)?;
        } else {
            let room = value["room"]
                .as_str()
                .map(|r| format!(" [{r}]"))
                .unwrap_or_default();
            out.text_line(&format!(
                "{} {}{} {}",
                text(&value["ns"]),
                text(&value["event"]),
                room,
                value["payload"]
            ))?;
        }
    }
    Ok(())
}
