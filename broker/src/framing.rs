//! Finds the HTTP/1 requests that frame their body twice: a head with both
//! `Content-Length` and `Transfer-Encoding`, the shape of request
//! smuggling. RFC 9112 §6.1 lets a server reject such a request, and the
//! broker does (400, then close); hyper instead drops `Content-Length` before
//! the request reaches the broker, so the check reads the raw bytes.
//!
//! [`Watched`] wraps a connection's socket and feeds every byte hyper reads
//! to a [`Tracker`], which follows the requests' framing as hyper does: a
//! head up to its empty line, then a `Content-Length` or chunked body, then
//! the next head. It keeps only the first [`LINE_PREFIX`] bytes of the
//! current line, so a connection costs a few dozen bytes whatever it sends.
//! The HTTP handler asks [`Verdicts::next_framed_twice`] once per request, in
//! order. When the tracker cannot follow the bytes (a line it cannot read,
//! which hyper then refuses anyway) it stops watching that connection.
//! After a WebSocket upgrade the session takes the socket out of the
//! wrapper, so WebSocket traffic is never looked at.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of each line the tracker keeps: enough for the header names it
/// looks for and any `Content-Length` value.
const LINE_PREFIX: usize = 64;

/// No request: [`Verdicts::first_framed_twice`] while none was seen.
const NONE: u64 = u64::MAX;

/// Which request of one connection framed its body twice, written by the
/// [`Tracker`] as heads arrive and read by the handler as requests are
/// served (both in order; hyper serves one request at a time).
#[derive(Debug)]
pub(crate) struct Verdicts {
    /// Index (from 0) of the first request whose head had both headers.
    /// hyper closes the connection after such a request, so there is never
    /// a second one to remember.
    first_framed_twice: AtomicU64,
    /// Requests the handler has asked about.
    asked: AtomicU64,
}

impl Default for Verdicts {
    fn default() -> Verdicts {
        Verdicts {
            first_framed_twice: AtomicU64::new(NONE),
            asked: AtomicU64::new(0),
        }
    }
}

impl Verdicts {
    /// Whether the next request served on this connection carried both
    /// `Content-Length` and `Transfer-Encoding`. Call once per request.
    pub(crate) fn next_framed_twice(&self) -> bool {
        let index = self.asked.fetch_add(1, Relaxed);
        index == self.first_framed_twice.load(Relaxed)
    }
}

/// A socket whose incoming bytes are also fed to a [`Tracker`].
#[derive(Debug)]
pub(crate) struct Watched<S> {
    inner: S,
    tracker: Tracker,
    verdicts: Arc<Verdicts>,
}

impl<S> Watched<S> {
    /// Wraps `inner`; the handler reads the outcome from `verdicts`.
    pub(crate) fn new(inner: S, verdicts: Arc<Verdicts>) -> Watched<S> {
        Watched {
            inner,
            tracker: Tracker::default(),
            verdicts,
        }
    }

    /// The socket itself (after an upgrade).
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.tracker
                .feed(&buf.filled()[before..], &this.verdicts.first_framed_twice);
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Where in a connection's byte stream the tracker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a request head (or the empty lines before one).
    Head {
        /// The request line has been read.
        started: bool,
        /// The first `Content-Length` value.
        content_length: Option<u64>,
        /// A `Transfer-Encoding` header was seen.
        transfer_encoding: bool,
    },
    /// This many body bytes still to come (`Content-Length`).
    Body(u64),
    /// A chunk-size line of a chunked body.
    ChunkSize,
    /// This many bytes of chunk data still to come.
    ChunkData(u64),
    /// The line break after a chunk's data.
    ChunkEnd,
    /// The trailer section after the last chunk, up to its empty line.
    Trailers,
    /// Not followed any more.
    Lost,
}

const NEW_HEAD: State = State::Head {
    started: false,
    content_length: None,
    transfer_encoding: false,
};

/// Follows the framing of the requests on one connection.
#[derive(Debug)]
pub(crate) struct Tracker {
    state: State,
    /// Complete request heads seen.
    heads: u64,
    /// The start of the current line.
    line: [u8; LINE_PREFIX],
    /// Bytes of the current line so far (more than `LINE_PREFIX` when it
    /// was cut).
    line_len: usize,
    /// The last byte of the current line so far.
    line_last: u8,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker {
            state: NEW_HEAD,
            heads: 0,
            line: [0; LINE_PREFIX],
            line_len: 0,
            line_last: 0,
        }
    }
}

impl Tracker {
    /// Takes the next bytes hyper read; records in `framed_twice` the
    /// index of a request head that carries both framing headers.
    fn feed(&mut self, mut bytes: &[u8], framed_twice: &AtomicU64) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => return,
                State::Body(left) | State::ChunkData(left) => {
                    let take = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    *left -= take as u64;
                    bytes = &bytes[take..];
                    if *left == 0 {
                        self.state = match self.state {
                            State::ChunkData(_) => State::ChunkEnd,
                            _ => NEW_HEAD,
                        };
                    }
                }
                _ => match bytes.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.push(&bytes[..end]);
                        bytes = &bytes[end + 1..];
                        self.end_line(framed_twice);
                    }
                    None => {
                        self.push(bytes);
                        bytes = &[];
                    }
                },
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            let room = LINE_PREFIX.saturating_sub(self.line_len);
            let kept = room.min(bytes.len());
            self.line[self.line_len.min(LINE_PREFIX)..][..kept].copy_from_slice(&bytes[..kept]);
            self.line_len = self.line_len.saturating_add(bytes.len());
            self.line_last = last;
        }
    }

    /// A line ended (at its `\n`): act on it, and start the next.
    fn end_line(&mut self, framed_twice: &AtomicU64) {
        // A line ends with CRLF, or a bare LF as httparse also accepts.
        let len = match self.line_len {
            0 => 0,
            n if self.line_last == b'\r' => n - 1,
            n => n,
        };
        let cut = len > LINE_PREFIX;
        let line = &self.line[..len.min(LINE_PREFIX)];
        self.state = match self.state {
            State::Head {
                started: false,
                content_length: None,
                transfer_encoding: false,
            } if len == 0 => NEW_HEAD,
            State::Head {
                started: false,
                content_length,
                transfer_encoding,
            } => State::Head {
                started: true,
                content_length,
                transfer_encoding,
            },
            State::Head {
                content_length,
                transfer_encoding,
                ..
            } if len == 0 => {
                let index = self.heads;
                self.heads += 1;
                match (content_length, transfer_encoding) {
                    (Some(_), true) => {
                        // hyper closes the connection after this request.
                        let _ = framed_twice.compare_exchange(NONE, index, Relaxed, Relaxed);
                        State::Lost
                    }
                    (_, true) => State::ChunkSize,
                    (Some(0) | None, false) => NEW_HEAD,
                    (Some(length), false) => State::Body(length),
                }
            }
            State::Head {
                started,
                content_length,
                transfer_encoding,
            } => match header(line) {
                Header::ContentLength if cut => State::Lost,
                Header::ContentLength => match (content_length, decimal(value(line))) {
                    (_, None) => State::Lost,
                    (Some(first), Some(_)) => State::Head {
                        started,
                        content_length: Some(first),
                        transfer_encoding,
                    },
                    (None, Some(length)) => State::Head {
                        started,
                        content_length: Some(length),
                        transfer_encoding,
                    },
                },
                Header::TransferEncoding => State::Head {
                    started,
                    content_length,
                    transfer_encoding: true,
                },
                Header::Other => self.state,
            },
            State::ChunkSize => match chunk_size(line) {
                None => State::Lost,
                Some(0) => State::Trailers,
                Some(size) => State::ChunkData(size),
            },
            State::ChunkEnd if len == 0 => State::ChunkSize,
            State::ChunkEnd => State::Lost,
            State::Trailers if len == 0 => NEW_HEAD,
            state => state,
        };
        self.line_len = 0;
        self.line_last = 0;
    }
}

/// The header names the tracker acts on.
enum Header {
    ContentLength,
    TransferEncoding,
    Other,
}

fn header(line: &[u8]) -> Header {
    let name = line.split(|&b| b == b':').next().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"content-length") {
        Header::ContentLength
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        Header::TransferEncoding
    } else {
        Header::Other
    }
}

/// A header line's value, without the whitespace around it.
fn value(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| b == b':')
        .map_or(line.len(), |i| i + 1);
    line[start..].trim_ascii()
}

/// A `Content-Length` value: decimal digits only, as hyper reads it.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The size at the start of a chunk-size line (hex digits; extensions
/// after `;` and whitespace are ignored).
fn chunk_size(line: &[u8]) -> Option<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&line[..digits]).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index of the request framed twice, feeding `stream` in pieces
    /// of `piece` bytes; `None` when there is none.
    fn framed_twice(stream: &[u8], piece: usize) -> (Option<u64>, u64) {
        let mut tracker = Tracker::default();
        let found = AtomicU64::new(NONE);
        for chunk in stream.chunks(piece) {
            tracker.feed(chunk, &found);
        }
        let found = found.load(Relaxed);
        ((found != NONE).then_some(found), tracker.heads)
    }

    fn every_piece_size(stream: &[u8]) -> (Option<u64>, u64) {
        let whole = framed_twice(stream, stream.len().max(1));
        for piece in 1..stream.len().min(80) {
            assert_eq!(framed_twice(stream, piece), whole, "pieces of {piece}");
        }
        whole
    }

    const GET: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn plain_requests_bodies_and_chunks_are_followed_to_the_next_head() {
        let stream = format!(
            "{GET}\
             POST /v1/emit/a HTTP/1.1\r\nContent-Length: 21\r\n\r\n\
             Transfer-Encoding: x\n\
             POST /v1/emit/a HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
             5;ext=1\r\nhello\r\n1b\r\nContent-Length: 3\r\n\r\nxxxxxx\r\n0\r\nTrailer: t\r\n\r\n\
             \r\n{GET}"
        );
        assert_eq!(every_piece_size(stream.as_bytes()), (None, 4));
    }

    #[test]
    fn a_head_with_both_headers_is_found_in_either_order() {
        for both in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nCONTENT-LENGTH:5\r\n",
        ] {
            let stream =
                format!("{GET}POST /v1/emit/a HTTP/1.1\r\nHost: x\r\n{both}\r\n0\r\n\r\n{GET}");
            assert_eq!(every_piece_size(stream.as_bytes()), (Some(1), 2), "{both}");
        }
    }

    #[test]
    fn lines_it_cannot_read_stop_the_watch() {
        let long = format!("Content-Length: {}5\r\n", " ".repeat(LINE_PREFIX));
        for head in ["Content-Length: five\r\n", "Content-Length: +5\r\n", &long] {
            let stream = format!("POST / HTTP/1.1\r\n{head}Transfer-Encoding: chunked\r\n\r\n");
            assert_eq!(every_piece_size(stream.as_bytes()), (None, 0), "{head}");
        }
        let bad_chunk = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{GET}");
        assert_eq!(every_piece_size(bad_chunk.as_bytes()), (None, 1));
    }

    #[test]
    fn the_handler_learns_which_request_it_was() {
        let verdicts = Verdicts::default();
        verdicts.first_framed_twice.store(1, Relaxed);
        assert!(!verdicts.next_framed_twice());
        assert!(verdicts.next_framed_twice());
        assert!(!verdicts.next_framed_twice());
    }
}
