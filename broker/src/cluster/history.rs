//! History in Redis, for a cluster: one stream per history namespace
//! (`{prefix}:hist:{ns}`, bounded by `MAXLEN` and a TTL) and a meta hash
//! beside it (`…:meta`: the epoch and the last `seq`).
//!
//! One Lua script (`lua/history_append.lua`) takes the next `seq`, appends
//! and publishes in one atomic step, so every node sees one order per
//! namespace and a client can resume on any node (Centrifugo's
//! `broker_history_add_stream` is the model). It also remembers a
//! publisher's message id for the de-duplication window, so a retried
//! acked emit is neither stored nor published twice. Another script
//! (`lua/history_read.lua`) reads the events after a `seq`: for resumes, the
//! HTTP read API and a node filling a gap in what it received.
//!
//! A published history event is `h<seq>:<epoch>:<message>`: the leading
//! `h` can never start a plain cross-node message (a MessagePack map).

use std::time::Duration;

use redis::{Script, ScriptInvocation, Value};
use thiserror::Error;

/// The append script's source.
const APPEND: &str = include_str!("lua/history_append.lua");
/// The read script's source.
const READ: &str = include_str!("lua/history_read.lua");

/// What went wrong talking to the Redis history.
#[derive(Debug, Error)]
pub(crate) enum RedisHistoryError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from a history script: {0}")]
    Reply(&'static str),
}

/// The two scripts, loaded once per node.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) append: Script,
    pub(crate) read: Script,
}

impl Default for Scripts {
    fn default() -> Scripts {
        Scripts {
            append: Script::new(APPEND),
            read: Script::new(READ),
        }
    }
}

/// The bounds of one namespace's history in Redis.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Events kept (`MAXLEN`).
    pub(crate) size: usize,
    /// How long the stream lives after its last append.
    pub(crate) ttl: Duration,
    /// How long the epoch and `seq` outlive the last append: past it the
    /// history is gone and a new epoch starts.
    pub(crate) meta_ttl: Duration,
    /// How long a publisher's message id is remembered.
    pub(crate) mid_window: Duration,
}

/// One append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Append<'a> {
    pub(crate) stream: &'a str,
    pub(crate) meta: &'a str,
    /// The publisher's message-id key, when it sent one.
    pub(crate) mid_key: Option<&'a str>,
    /// The channel to publish on (`None`: store only).
    pub(crate) channel: Option<&'a str>,
    /// The cross-node message, opaque here.
    pub(crate) message: &'a [u8],
    /// The epoch to start when the namespace has none.
    pub(crate) new_epoch: &'a str,
    pub(crate) bounds: Bounds,
}

fn seconds(duration: Duration) -> u64 {
    // Redis TTLs are whole seconds; round up so a short TTL is not "none".
    duration
        .as_millis()
        .div_ceil(1000)
        .try_into()
        .unwrap_or(u64::MAX)
}

impl Append<'_> {
    /// The script call, for a pipeline (`pipe.invoke_script(&…)`, after
    /// `pipe.load_script(&scripts.append)`) or on its own.
    pub(crate) fn invocation<'s>(&self, scripts: &'s Scripts) -> ScriptInvocation<'s> {
        let mut call = scripts.append.prepare_invoke();
        call.key(self.stream)
            .key(self.meta)
            .key(self.mid_key.unwrap_or(""))
            .arg(self.message)
            .arg(self.bounds.size.max(1))
            .arg(seconds(self.bounds.ttl))
            .arg(self.channel.unwrap_or(""))
            .arg(seconds(self.bounds.meta_ttl))
            .arg(self.new_epoch)
            .arg(seconds(self.bounds.mid_window).max(1));
        call
    }
}

/// What the append script did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seq: u64,
    pub(crate) epoch: String,
    /// The message id was seen within the window: nothing was stored or
    /// published, `seq` is the first copy's.
    pub(crate) duplicate: bool,
}

impl Appended {
    /// Decodes the script's reply `{seq, epoch, duplicate}`.
    pub(crate) fn from_reply(reply: &Value) -> Result<Appended, RedisHistoryError> {
        let [seq, epoch, duplicate] = array(reply)? else {
            return Err(RedisHistoryError::Reply("append: not three values"));
        };
        Ok(Appended {
            seq: int(seq)?,
            epoch: text(epoch)?,
            duplicate: int(duplicate)? == 1,
        })
    }
}

/// What the read script returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    /// The last `seq` given in the namespace (0: none yet).
    pub(crate) last: u64,
    pub(crate) epoch: String,
    /// The oldest `seq` still kept (0: the stream is empty).
    pub(crate) oldest: u64,
    /// The events after the position asked for, oldest first.
    pub(crate) entries: Vec<(u64, Vec<u8>)>,
}

/// Reads up to `limit` events after `since` (0: only the position).
pub(crate) async fn read<C>(
    connection: &mut C,
    scripts: &Scripts,
    (stream, meta): (&str, &str),
    since: u64,
    limit: usize,
    (new_epoch, meta_ttl): (&str, Duration),
) -> Result<Range, RedisHistoryError>
where
    C: redis::aio::ConnectionLike + Send,
{
    let reply: Value = scripts
        .read
        .key(stream)
        .key(meta)
        .arg(since)
        .arg(limit)
        .arg(new_epoch)
        .arg(seconds(meta_ttl))
        .invoke_async(connection)
        .await?;
    let [last, epoch, oldest, entries] = array(&reply)? else {
        return Err(RedisHistoryError::Reply("read: not four values"));
    };
    let entries = array(entries)?
        .iter()
        .map(entry)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Range {
        last: int(last)?,
        epoch: text(epoch)?,
        oldest: int(oldest)?,
        entries,
    })
}

/// One stream entry `[id, ["d", message]]`; the id is `<seq>-1`.
fn entry(value: &Value) -> Result<(u64, Vec<u8>), RedisHistoryError> {
    let [id, fields] = array(value)? else {
        return Err(RedisHistoryError::Reply(
            "read: an entry is not [id, fields]",
        ));
    };
    let id = text(id)?;
    let seq = id
        .split_once('-')
        .and_then(|(seq, _)| seq.parse().ok())
        .ok_or(RedisHistoryError::Reply("read: an entry id is not <seq>-1"))?;
    let fields = array(fields)?;
    let message = fields
        .chunks_exact(2)
        .find(|pair| matches!(&pair[0], Value::BulkString(name) if name == b"d"))
        .ok_or(RedisHistoryError::Reply("read: an entry has no d field"))?;
    Ok((seq, bytes(&message[1])?.to_vec()))
}

/// A history event as published by the append script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published<'a> {
    pub(crate) seq: u64,
    pub(crate) epoch: &'a str,
    pub(crate) message: &'a [u8],
}

/// Splits `h<seq>:<epoch>:<message>`; `None` for anything else (a plain
/// cross-node message starts with a MessagePack map marker instead).
pub(crate) fn parse_published(bytes: &[u8]) -> Option<Published<'_>> {
    let rest = bytes.strip_prefix(b"h")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let seq = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let rest = &rest[colon + 1..];
    let colon = rest.iter().position(|&b| b == b':')?;
    let epoch = std::str::from_utf8(&rest[..colon]).ok()?;
    Some(Published {
        seq,
        epoch,
        message: &rest[colon + 1..],
    })
}

fn array(value: &Value) -> Result<&[Value], RedisHistoryError> {
    match value {
        Value::Array(items) => Ok(items),
        _ => Err(RedisHistoryError::Reply("expected an array")),
    }
}

fn int(value: &Value) -> Result<u64, RedisHistoryError> {
    match value {
        Value::Int(n) => {
            u64::try_from(*n).map_err(|_| RedisHistoryError::Reply("a negative number"))
        }
        Value::BulkString(digits) => std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(RedisHistoryError::Reply("expected a number")),
        _ => Err(RedisHistoryError::Reply("expected a number")),
    }
}

fn bytes(value: &Value) -> Result<&[u8], RedisHistoryError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.as_bytes()),
        _ => Err(RedisHistoryError::Reply("expected a string")),
    }
}

fn text(value: &Value) -> Result<String, RedisHistoryError> {
    let bytes = bytes(value)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| RedisHistoryError::Reply("a string is not UTF-8"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn published_events_split_and_plain_messages_do_not() {
        let published = parse_published(b"h42:e1x:\x82\xa1a\x01").unwrap();
        assert_eq!(published.seq, 42);
        assert_eq!(published.epoch, "e1x");
        assert_eq!(published.message, b"\x82\xa1a\x01");
        assert_eq!(parse_published(b"\x82\xa4from"), None);
        assert_eq!(parse_published(b"hx:e:m"), None);
        assert_eq!(parse_published(b"h1:e"), None);
    }

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(seconds(Duration::ZERO), 0);
        assert_eq!(seconds(Duration::from_millis(1)), 1);
        assert_eq!(seconds(Duration::from_millis(2500)), 3);
    }

    /// A `redis-server` of this test on a free loopback port, killed on drop.
    struct Redis {
        child: std::process::Child,
        url: String,
    }

    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn redis() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test.sh installs it)");
        let redis = Redis {
            child,
            url: format!("redis://127.0.0.1:{port}/?protocol=resp3"),
        };
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return redis;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not listen on port {port} within 5 s");
    }

    const BOUNDS: Bounds = Bounds {
        size: 3,
        ttl: Duration::from_secs(60),
        meta_ttl: Duration::from_secs(600),
        mid_window: Duration::from_secs(60),
    };

    fn append<'a>(message: &'a [u8], mid_key: Option<&'a str>) -> Append<'a> {
        Append {
            stream: "t:hist:/chat",
            meta: "t:hist:/chat:meta",
            mid_key,
            channel: Some("t:hev:/chat"),
            message,
            new_epoch: "epoch-1",
            bounds: BOUNDS,
        }
    }

    async fn run(connection: &mut redis::aio::MultiplexedConnection, call: Append<'_>) -> Appended {
        let scripts = Scripts::default();
        let reply: Value = call
            .invocation(&scripts)
            .invoke_async(connection)
            .await
            .unwrap();
        Appended::from_reply(&reply).unwrap()
    }

    async fn read_after(connection: &mut redis::aio::MultiplexedConnection, since: u64) -> Range {
        let keys = ("t:hist:/chat", "t:hist:/chat:meta");
        read(
            connection,
            &Scripts::default(),
            keys,
            since,
            100,
            ("epoch-2", BOUNDS.meta_ttl),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn appends_number_bound_publish_and_read_back() {
        let server = redis().await;
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let mut listener = client.get_async_pubsub().await.unwrap();
        listener.subscribe("t:hev:/chat").await.unwrap();
        let mut published = listener.on_message();

        for n in 1..=5u8 {
            let appended = run(&mut connection, append(&[n], None)).await;
            assert_eq!(
                (appended.seq, appended.epoch.as_str(), appended.duplicate),
                (u64::from(n), "epoch-1", false)
            );
            let message = futures_util::StreamExt::next(&mut published).await.unwrap();
            let payload: Vec<u8> = message.get_payload().unwrap();
            let event = parse_published(&payload).unwrap();
            assert_eq!(
                (event.seq, event.epoch, event.message),
                (u64::from(n), "epoch-1", &[n][..])
            );
        }

        let range = read_after(&mut connection, 2).await;
        assert_eq!(
            (range.last, range.epoch.as_str(), range.oldest),
            (5, "epoch-1", 3)
        );
        assert_eq!(
            range.entries,
            vec![(3, vec![3]), (4, vec![4]), (5, vec![5])]
        );
        assert_eq!(read_after(&mut connection, 5).await.entries, Vec::new());
    }

    #[tokio::test]
    async fn a_repeated_message_id_is_neither_stored_nor_published_again() {
        let server = redis().await;
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let first = run(&mut connection, append(b"a", Some("t:mid:/chat:m1"))).await;
        let again = run(&mut connection, append(b"a", Some("t:mid:/chat:m1"))).await;
        let other = run(&mut connection, append(b"b", Some("t:mid:/chat:m2"))).await;
        assert_eq!((first.seq, first.duplicate), (1, false));
        assert_eq!((again.seq, again.duplicate), (1, true));
        assert_eq!((other.seq, other.duplicate), (2, false));
        assert_eq!(
            read_after(&mut connection, 0).await.entries,
            vec![(1, b"a".to_vec()), (2, b"b".to_vec())]
        );
    }

    #[tokio::test]
    async fn a_lost_history_starts_a_new_epoch() {
        let server = redis().await;
        let client = redis::Client::open(server.url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        run(&mut connection, append(b"a", None)).await;
        let () = redis::cmd("FLUSHALL")
            .query_async(&mut connection)
            .await
            .unwrap();
        let range = read_after(&mut connection, 1).await;
        assert_eq!((range.last, range.epoch.as_str()), (0, "epoch-2"));
        assert!(range.entries.is_empty(), "nothing survives a flush");
        let appended = run(&mut connection, append(b"b", None)).await;
        assert_eq!((appended.seq, appended.epoch.as_str()), (1, "epoch-2"));
    }
}
