//! An upgraded connection taken back from hyper as the stream it is (out
//! of the `framing` watch, which WebSocket bytes never go through): plain
//! TCP, or TLS (`[tls]`), and split into halves: one for the session's
//! [`crate::inbound::FrameReader`], one for the writer task. Plain TCP
//! splits into owned halves with no lock between them; TLS into the
//! [`crate::tls::stream`] halves that share the rustls connection and
//! its buffers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::framing::Watched;
use crate::tls::stream::{self, TlsRead, TlsStream, TlsWrite};

/// The two halves of an upgraded connection, and the bytes hyper had
/// already read past the HTTP request (usually none).
pub(crate) struct Halves {
    pub(crate) read: ReadHalf,
    pub(crate) early: Bytes,
    pub(crate) write: WriteHalf,
}

/// The read half: readiness, then a non-blocking read into a buffer (so
/// no buffer is held while waiting).
#[derive(Debug)]
pub(crate) enum ReadHalf {
    /// Plain TCP.
    Plain(OwnedReadHalf),
    /// TLS over TCP.
    Tls(TlsRead),
}

/// The write half.
#[derive(Debug)]
pub(crate) enum WriteHalf {
    /// Plain TCP.
    Plain(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(TlsWrite),
}

impl From<OwnedReadHalf> for ReadHalf {
    fn from(half: OwnedReadHalf) -> ReadHalf {
        ReadHalf::Plain(half)
    }
}

impl From<OwnedWriteHalf> for WriteHalf {
    fn from(half: OwnedWriteHalf) -> WriteHalf {
        WriteHalf::Plain(half)
    }
}

/// Splits an upgraded connection; `None` if it is not one of the streams
/// the server hands to hyper (which would be a bug).
pub(crate) fn split(upgraded: Upgraded) -> Option<Halves> {
    let upgraded = match upgraded.downcast::<TokioIo<Watched<TcpStream>>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_inner().into_split();
            return Some(Halves {
                read: read.into(),
                early: parts.read_buf,
                write: write.into(),
            });
        }
        Err(upgraded) => upgraded,
    };
    let parts = upgraded.downcast::<TokioIo<Watched<TlsStream>>>().ok()?;
    let (read, write) = stream::split(parts.io.into_inner().into_inner());
    Some(Halves {
        read: ReadHalf::Tls(read),
        early: parts.read_buf,
        write: WriteHalf::Tls(write),
    })
}

impl ReadHalf {
    /// Resolves when a read may find bytes.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            ReadHalf::Plain(half) => half.readable().await,
            ReadHalf::Tls(half) => half.readable().await,
        }
    }

    /// Appends what is there to `buf`; `Ok(0)` at the end of the stream,
    /// `WouldBlock` when nothing is.
    pub(crate) fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ReadHalf::Plain(half) => half.try_read_buf(buf),
            ReadHalf::Tls(half) => half.try_read_buf(buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_write(cx, buf),
            WriteHalf::Tls(half) => Pin::new(half).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_flush(cx),
            WriteHalf::Tls(half) => Pin::new(half).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Plain(half) => Pin::new(half).poll_shutdown(cx),
            WriteHalf::Tls(half) => Pin::new(half).poll_shutdown(cx),
        }
    }
}
