//! The floor (`herald-bench serve-floor --listen ADDR`): the least a
//! WebSocket pub/sub relay can do, as the practical limit to measure Herald
//! against.
//!
//! A client's first message says `sub TOPIC` or `pub TOPIC` (answered
//! `ok`). Every binary message a publisher sends is framed once as a
//! server WebSocket frame (shared [`Bytes`]) and offered to each subscriber
//! of the topic; each subscriber has a writer task that takes everything
//! queued and writes it with one `write_all`. No envelopes, no names to
//! validate, no patterns: one exact-topic lookup per message. A subscriber
//! whose queue ([`QUEUE_FRAMES`]) is full misses the message (the benchmark
//! counts it as loss). Messages are at most [`MAX_MESSAGE_BYTES`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Frames a subscriber may have queued.
pub const QUEUE_FRAMES: usize = 8192;
/// Frames one write takes at most.
pub const MAX_BATCH: usize = 1024;
/// The largest message a client may send (a payload plus room).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// How long a client has to upgrade and say what it is.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

type Queues = Arc<Vec<mpsc::Sender<Bytes>>>;

/// Topic → the queues of its subscribers (copy-on-write snapshots).
#[derive(Debug, Default)]
struct Topics {
    map: RwLock<HashMap<String, Queues>>,
}

impl Topics {
    fn subscribers(&self, topic: &str) -> Option<Queues> {
        self.map.read().ok()?.get(topic).cloned()
    }

    fn add(&self, topic: &str, queue: mpsc::Sender<Bytes>) {
        if let Ok(mut map) = self.map.write() {
            let queues = map.entry(topic.to_owned()).or_default();
            Arc::make_mut(queues).push(queue);
        }
    }

    fn prune(&self, topic: &str) {
        if let Ok(mut map) = self.map.write()
            && let Some(queues) = map.get_mut(topic)
        {
            Arc::make_mut(queues).retain(|queue| !queue.is_closed());
        }
    }
}

/// A server-to-client WebSocket frame (FIN, binary, unmasked) holding
/// `payload`.
pub fn binary_frame(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 10);
    frame.put_u8(0x82);
    match payload.len() {
        len if len < 126 => frame.put_u8(len as u8),
        len if len <= usize::from(u16::MAX) => {
            frame.put_u8(126);
            frame.put_u16(len as u16);
        }
        len => {
            frame.put_u8(127);
            frame.put_u64(len as u64);
        }
    }
    frame.put_slice(payload);
    frame.freeze()
}

/// Serves the floor on `listener` until the process is stopped.
pub async fn serve(listener: TcpListener) {
    let topics = Arc::new(Topics::default());
    crate::accept::serve_each(listener, move |stream| {
        let topics = Arc::clone(&topics);
        async move { session(stream, topics).await }
    })
    .await
}

async fn session(stream: TcpStream, topics: Arc<Topics>) {
    let hello = async {
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config))
            .await
            .ok()?;
        match ws.next().await {
            Some(Ok(Message::Text(text))) => Some((ws, text.as_str().to_owned())),
            _ => None,
        }
    };
    let Ok(Some((mut ws, hello))) = tokio::time::timeout(HELLO_TIMEOUT, hello).await else {
        return;
    };
    match hello.split_once(' ') {
        Some(("sub", topic)) if !topic.is_empty() => subscriber(ws, topic, &topics).await,
        Some(("pub", topic)) if !topic.is_empty() => publisher(ws, topic, &topics).await,
        _ => {
            let refusal = format!("expected `sub TOPIC` or `pub TOPIC`, got {hello:?}");
            let _ = ws.send(Message::Text(refusal.into())).await;
        }
    }
}

async fn subscriber(mut ws: WebSocketStream<TcpStream>, topic: &str, topics: &Topics) {
    let (queue, mut frames) = mpsc::channel(QUEUE_FRAMES);
    topics.add(topic, queue);
    if ws.send(Message::Text("ok".into())).await.is_err() {
        return;
    }
    // From here on the floor writes pre-framed bytes straight to the socket.
    let mut stream = ws.into_inner();
    let mut batch = Vec::with_capacity(64 * 1024);
    while let Some(frame) = frames.recv().await {
        batch.clear();
        batch.extend_from_slice(&frame);
        for _ in 1..MAX_BATCH {
            match frames.try_recv() {
                Ok(frame) => batch.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if stream.write_all(&batch).await.is_err() {
            return;
        }
    }
}

async fn publisher(mut ws: WebSocketStream<TcpStream>, topic: &str, topics: &Topics) {
    if ws.send(Message::Text("ok".into())).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = ws.next().await {
        let Message::Binary(payload) = message else {
            continue;
        };
        let Some(queues) = topics.subscribers(topic) else {
            continue;
        };
        let frame = binary_frame(&payload);
        let mut closed = false;
        for queue in queues.iter() {
            if let Err(mpsc::error::TrySendError::Closed(_)) = queue.try_send(frame.clone()) {
                closed = true;
            }
        }
        if closed {
            topics.prune(topic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_use_the_shortest_length_form() {
        assert_eq!(binary_frame(b"hi").as_ref(), &[0x82, 2, b'h', b'i']);
        let medium = binary_frame(&[7u8; 300]);
        assert_eq!(&medium[..4], &[0x82, 126, 0x01, 0x2c]);
        assert_eq!(medium.len(), 304);
        let large = binary_frame(&vec![1u8; 70_000]);
        assert_eq!(&large[..2], &[0x82, 127]);
        assert_eq!(&large[2..10], &70_000u64.to_be_bytes());
        assert_eq!(large.len(), 70_010);
    }

    #[test]
    fn closed_subscribers_are_pruned() {
        let topics = Topics::default();
        let (open, _open_rx) = mpsc::channel(1);
        let (closed, closed_rx) = mpsc::channel(1);
        topics.add("t", open);
        topics.add("t", closed);
        drop(closed_rx);
        topics.prune("t");
        assert_eq!(topics.subscribers("t").map(|q| q.len()), Some(1));
        assert!(topics.subscribers("other").is_none());
    }
}
