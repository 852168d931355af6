//! An upgraded connection taken back from hyper as the plain TCP stream it
//! is (out of the `framing` watch, which WebSocket bytes never go
//! through), and split into owned halves: one for the session's
//! [`crate::inbound::FrameReader`], one for the writer task, with no lock
//! between them.

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::framing::Watched;

/// The two halves of an upgraded TCP connection, and the bytes hyper had
/// already read past the HTTP request (usually none).
pub(crate) struct Halves {
    pub(crate) read: OwnedReadHalf,
    pub(crate) early: Bytes,
    pub(crate) write: OwnedWriteHalf,
}

/// Splits an upgraded connection; `None` if it is not the TCP stream the
/// server handed to hyper (which would be a bug: every connection is one).
pub(crate) fn split(upgraded: Upgraded) -> Option<Halves> {
    let parts = upgraded.downcast::<TokioIo<Watched<TcpStream>>>().ok()?;
    let (read, write) = parts.io.into_inner().into_inner().into_split();
    Some(Halves {
        read,
        early: parts.read_buf,
        write,
    })
}
