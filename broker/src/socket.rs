//! An upgraded connection split in two: the reader's half, parsed by
//! tungstenite, and the writer's raw half, which takes ready-made frames
//! (see [`crate::frame`]).
//!
//! Tungstenite answers pings and closes on its own by writing to the
//! stream it reads from. The reader's half discards those writes: the
//! session answers a ping by queueing a pong, and the writer sends the
//! close frame, so every byte the client receives goes through the one
//! writer, in queue order.
//!
//! Memory: tungstenite keeps a fixed read buffer per connection, which is
//! most of what an idle connection costs, so the broker gives it a small
//! one. A busy publisher must still read many frames per syscall, so the
//! reader's half reads in bursts: when a read fills the buffer it was
//! given (more is probably waiting), the next read takes up to
//! [`BURST_BYTES`] at once into a buffer of its own, which is freed as
//! soon as it is drained or the socket has nothing more. An idle
//! connection holds no burst buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Most bytes one burst read takes from the socket.
pub(crate) const BURST_BYTES: usize = 32 * 1024;

/// The reader's half of a connection: reads come in bursts when the peer
/// sends fast (see the module docs), writes vanish.
#[derive(Debug)]
pub(crate) struct ReadOnly<R> {
    inner: R,
    /// Bytes of the last burst not yet handed out; empty (unallocated)
    /// otherwise.
    burst: Vec<u8>,
    /// How much of `burst` was handed out.
    taken: usize,
    /// The last direct read filled the caller's buffer.
    busy: bool,
}

impl<R> ReadOnly<R> {
    pub(crate) fn new(inner: R) -> ReadOnly<R> {
        ReadOnly {
            inner,
            burst: Vec::new(),
            taken: 0,
            busy: false,
        }
    }

    /// Copies buffered burst bytes out; frees the burst once drained.
    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.burst.len() - self.taken);
        buf.put_slice(&self.burst[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.burst.len() {
            self.burst = Vec::new();
            self.taken = 0;
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ReadOnly<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.taken < this.burst.len() {
            this.hand_out(buf);
            return Poll::Ready(Ok(()));
        }
        if !this.busy {
            let before = buf.filled().len();
            let result = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
            this.busy = result.is_ok() && buf.remaining() == 0 && buf.filled().len() > before;
            return Poll::Ready(result);
        }
        this.burst.resize(BURST_BYTES, 0);
        let mut burst = ReadBuf::new(&mut this.burst);
        match Pin::new(&mut this.inner).poll_read(cx, &mut burst) {
            Poll::Ready(Ok(())) => {
                let filled = burst.filled().len();
                this.burst.truncate(filled);
                this.busy = filled == BURST_BYTES;
                if filled > 0 {
                    this.hand_out(buf);
                } else {
                    this.burst = Vec::new();
                }
                Poll::Ready(Ok(()))
            }
            other => {
                // Nothing waiting (or an error): go back to direct reads
                // and hold no buffer while idle.
                this.burst = Vec::new();
                this.busy = false;
                other
            }
        }
    }
}

impl<R: Unpin> AsyncWrite for ReadOnly<R> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The read half of a TCP connection after an HTTP upgrade: the bytes
/// hyper had already read past the request come first.
pub(crate) type TcpReader = tokio::io::Chain<io::Cursor<Bytes>, OwnedReadHalf>;

/// An upgraded connection, split for one reader and one writer.
pub(crate) enum Halves {
    /// A plain TCP connection: two lock-free owned halves.
    Tcp(TcpReader, OwnedWriteHalf),
    /// Any other transport (kept generic for future front ends, e.g. TLS).
    Other(
        tokio::io::ReadHalf<TokioIo<Upgraded>>,
        tokio::io::WriteHalf<TokioIo<Upgraded>>,
    ),
}

/// Splits an upgraded connection, taking the TCP stream back out of
/// hyper when it is one.
pub(crate) fn split(upgraded: Upgraded) -> Halves {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            // `read_buf` is a view into hyper's whole read buffer: copy the
            // few bytes (usually none) so that buffer is freed now.
            let early = Bytes::copy_from_slice(&parts.read_buf);
            Halves::Tcp(io::Cursor::new(early).chain(read), write)
        }
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            Halves::Other(read, write)
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Whatever the read sizes, the bytes come out whole and in order, and
    /// no burst buffer is held once everything was read.
    #[tokio::test]
    async fn bursts_preserve_the_byte_stream_and_are_freed() {
        let (mut tx, rx) = tokio::io::duplex(256 * 1024);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for chunk in sent.chunks(7_000) {
                    tx.write_all(chunk).await.expect("write");
                }
            })
        };
        let mut reader = ReadOnly::new(rx);
        let mut received = Vec::new();
        let mut chunk = [0u8; 512];
        while received.len() < sent.len() {
            let n = reader.read(&mut chunk).await.expect("read");
            assert!(n > 0, "unexpected end of stream");
            received.extend_from_slice(&chunk[..n]);
        }
        writer.await.expect("writer task");
        assert_eq!(received, sent);
        assert!(reader.taken == reader.burst.len() && reader.burst.capacity() == 0);
    }

    #[tokio::test]
    async fn writes_are_discarded() {
        let (_tx, rx) = tokio::io::duplex(64);
        let mut reader = ReadOnly::new(rx);
        assert_eq!(reader.write(b"pong").await.expect("write"), 4);
        reader.flush().await.expect("flush");
    }
}
