//! Reading the client's WebSocket frames (RFC 6455 §5) straight off the
//! socket: headers parsed by tungstenite's `FrameHeader`, payloads unmasked
//! in place and handed on as [`Bytes`] slices of the read buffer, with no
//! copy and no per-frame allocation.
//!
//! Two layers: [`FrameParser`] is the byte-level state machine (a buffer in,
//! whole messages out, no I/O, so it is fuzzed with chunked input), and
//! [`FrameReader`] feeds it from the socket.
//!
//! The read buffer exists only while bytes are waiting: it is allocated
//! when the socket becomes readable and dropped whenever it is empty and
//! the socket has nothing more, so an idle connection holds no buffer at
//! all, while a busy publisher reads up to [`READ_CHUNK`] bytes (dozens of
//! frames) per syscall. The buffer grows with the bytes that actually
//! arrived, never with what a header announces, so a client that trickles
//! a large frame holds one read chunk, and a message must arrive in full
//! within the message timeout of its first byte.
//!
//! Checked here, each a protocol error: client frames must be masked;
//! reserved bits and opcodes are refused; control frames must be whole and
//! at most 125 bytes; a fragmented message must be continued before a new
//! one starts; a close frame's code must be one an endpoint may send. Text
//! (and close reasons) must be UTF-8, checked fragment by fragment. A frame
//! or message over the size limit is refused before its payload is read.

use std::io::{self, Cursor};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use crate::socket::ReadHalf;

/// Bytes one read may take from the socket.
pub(crate) const READ_CHUNK: usize = 16 * 1024;
/// Control frames carry at most this many payload bytes.
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// One whole message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A binary message.
    Binary(Bytes),
    /// A text message (valid UTF-8).
    Text(Bytes),
    /// A ping, with its payload (to echo in the pong).
    Ping(Bytes),
    /// A pong (answers our heartbeat).
    Pong,
    /// The client's close frame, with its status code if it gave one.
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A frame or message larger than the limit.
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooBig {
        /// Its announced (or accumulated) size.
        size: u64,
        /// The limit.
        max: usize,
    },
    /// The peer broke the framing rules.
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8.
    #[error("invalid UTF-8 in a {0}")]
    InvalidUtf8(&'static str),
    /// A message started and did not complete within the message timeout.
    #[error("a message did not arrive in full within {0:?}")]
    Timeout(Duration),
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
}

/// A message arriving in fragments.
#[derive(Debug)]
struct Fragments {
    text: bool,
    data: BytesMut,
    /// For text: how many leading bytes are known to be valid UTF-8 (the
    /// rest may end in a character split across fragments).
    checked: usize,
}

/// The framing state machine: bytes in ([`FrameParser::buffer`]), whole
/// messages out ([`FrameParser::parse`]). No I/O.
#[derive(Debug)]
pub struct FrameParser {
    buf: BytesMut,
    max_message: usize,
    fragments: Option<Fragments>,
}

impl FrameParser {
    /// A parser starting with `early` (bytes already read past the HTTP
    /// upgrade); messages over `max_message` bytes are refused.
    pub fn new(early: &[u8], max_message: usize) -> FrameParser {
        FrameParser {
            buf: BytesMut::from(early),
            max_message,
            fragments: None,
        }
    }

    /// The buffer new bytes are appended to.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// True while part of a message has arrived and the rest has not.
    pub fn mid_message(&self) -> bool {
        !self.buf.is_empty() || self.fragments.is_some()
    }

    /// Takes whole frames from the buffer until one completes a message;
    /// `None` when more bytes are needed. Never reserves memory for bytes
    /// that have not arrived.
    pub fn parse(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            let mut cursor = Cursor::new(&self.buf[..]);
            // Parsing a header from memory fails only on a reserved opcode.
            let Some((header, len)) = FrameHeader::parse(&mut cursor)
                .map_err(|_| ReadError::Protocol("reserved opcode"))?
            else {
                return Ok(None);
            };
            let header_len = cursor.position() as usize;
            self.check(&header, len)?;
            // `check` bounded `len` by the message limit, so it fits.
            let len = len as usize;
            if self.buf.len() < header_len + len {
                return Ok(None);
            }
            self.buf.advance(header_len);
            let mut payload = self.buf.split_to(len);
            if let Some(mask) = header.mask {
                unmask(&mut payload, mask);
            }
            if let Some(message) = self.message(&header, payload)? {
                return Ok(Some(message));
            }
        }
    }

    /// The rules a frame's header must follow, before its payload is read.
    fn check(&self, header: &FrameHeader, len: u64) -> Result<(), ReadError> {
        if header.mask.is_none() {
            return Err(ReadError::Protocol("client frames must be masked"));
        }
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(ReadError::Protocol(
                "reserved bits set (no extension was negotiated)",
            ));
        }
        match header.opcode {
            OpCode::Control(_) if !header.is_final => {
                Err(ReadError::Protocol("fragmented control frame"))
            }
            OpCode::Control(_) if len > MAX_CONTROL_PAYLOAD => {
                Err(ReadError::Protocol("control frame payload over 125 bytes"))
            }
            _ => {
                let so_far = self.fragments.as_ref().map_or(0, |f| f.data.len() as u64);
                let size = so_far.saturating_add(len);
                if size > self.max_message as u64 {
                    Err(ReadError::TooBig {
                        size,
                        max: self.max_message,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// What one frame contributes: a whole message, or nothing yet.
    fn message(
        &mut self,
        header: &FrameHeader,
        payload: BytesMut,
    ) -> Result<Option<Incoming>, ReadError> {
        let data = match header.opcode {
            OpCode::Control(Control::Close) => return close_frame(&payload).map(Some),
            OpCode::Control(Control::Ping) => return Ok(Some(Incoming::Ping(payload.freeze()))),
            OpCode::Control(_) => return Ok(Some(Incoming::Pong)),
            OpCode::Data(Data::Continue) => {
                let Some(fragments) = self.fragments.as_mut() else {
                    return Err(ReadError::Protocol("continuation frame outside a message"));
                };
                fragments.data.extend_from_slice(&payload);
                if fragments.text {
                    fragments.checked = check_utf8_prefix(&fragments.data, fragments.checked)?;
                }
                if !header.is_final {
                    return Ok(None);
                }
                let Some(Fragments {
                    text,
                    data,
                    checked,
                }) = self.fragments.take()
                else {
                    return Ok(None);
                };
                return whole(text, data, checked).map(Some);
            }
            OpCode::Data(data) => data,
        };
        if self.fragments.is_some() {
            return Err(ReadError::Protocol(
                "a new message started before the fragmented one ended",
            ));
        }
        let text = data == Data::Text;
        if header.is_final {
            whole(text, payload, 0).map(Some)
        } else {
            let checked = if text {
                check_utf8_prefix(&payload, 0)?
            } else {
                0
            };
            self.fragments = Some(Fragments {
                text,
                data: payload,
                checked,
            });
            Ok(None)
        }
    }
}

/// The reader's half of a client connection, framed.
#[derive(Debug)]
pub(crate) struct FrameReader {
    socket: ReadHalf,
    parser: FrameParser,
    message_timeout: Duration,
    /// When the message now arriving began (its deadline's start); none
    /// between messages.
    message_started: Option<Instant>,
    /// Bytes arrived since [`FrameReader::heard_from_peer`] last asked.
    heard: bool,
}

impl FrameReader {
    /// Reads from `socket`, starting with `early` (bytes already read past
    /// the HTTP upgrade); messages over `max_message` bytes are refused, and
    /// a message must arrive in full within `message_timeout`.
    pub(crate) fn new(
        socket: ReadHalf,
        early: &[u8],
        max_message: usize,
        message_timeout: Duration,
    ) -> FrameReader {
        FrameReader {
            socket,
            parser: FrameParser::new(early, max_message),
            message_timeout,
            message_started: None,
            heard: true,
        }
    }

    /// True when bytes arrived from the peer since the last call (so the
    /// session reads the clock once per read, not once per message).
    pub(crate) fn heard_from_peer(&mut self) -> bool {
        std::mem::take(&mut self.heard)
    }

    /// The next whole message; `None` when the client closed the TCP
    /// connection. Cancel-safe: nothing read is lost if the future is
    /// dropped.
    pub(crate) async fn next(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            if let Some(message) = self.next_buffered()? {
                return Ok(Some(message));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The next whole message among the bytes already read, if there is
    /// one; never touches the socket.
    pub(crate) fn next_buffered(&mut self) -> Result<Option<Incoming>, ReadError> {
        let message = self.parser.parse()?;
        if !self.parser.mid_message() {
            self.message_started = None;
        } else if message.is_some() || self.message_started.is_none() {
            // A message completed and the next one has begun.
            self.message_started = Some(Instant::now());
        }
        Ok(message)
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> Result<bool, ReadError> {
        loop {
            let buf = self.parser.buffer();
            if buf.is_empty() {
                // Hold no buffer while waiting for an idle peer.
                *buf = BytesMut::new();
            }
            match self.message_started {
                None => self.socket.readable().await?,
                Some(started) => {
                    let deadline = started + self.message_timeout;
                    tokio::time::timeout_at(deadline, self.socket.readable())
                        .await
                        .map_err(|_| ReadError::Timeout(self.message_timeout))??;
                }
            }
            let buf = self.parser.buffer();
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            match self.socket.try_read_buf(buf) {
                Ok(0) => return Ok(false),
                Ok(_) => {
                    self.heard = true;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A close frame's payload: empty, or a status code an endpoint may send
/// (RFC 6455 §7.4) followed by a UTF-8 reason.
fn close_frame(payload: &[u8]) -> Result<Incoming, ReadError> {
    let (code, reason) = match payload {
        [] => return Ok(Incoming::Close(None)),
        [_] => return Err(ReadError::Protocol("close frame with a 1-byte payload")),
        [hi, lo, reason @ ..] => (u16::from_be_bytes([*hi, *lo]), reason),
    };
    if !sendable_close_code(code) {
        return Err(ReadError::Protocol(
            "close frame with an invalid status code",
        ));
    }
    std::str::from_utf8(reason).map_err(|_| ReadError::InvalidUtf8("close reason"))?;
    Ok(Incoming::Close(Some(code)))
}

/// Status codes a peer may put in a close frame: the registered ones of
/// 1000–1014 except 1004 (reserved), 1005 and 1006 (never sent); 3000–4999
/// (libraries and applications).
pub(crate) fn sendable_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Checks that `data[from..]` continues valid UTF-8, allowing a character
/// cut at the very end (the next fragment completes it); returns how far
/// the data is known valid.
fn check_utf8_prefix(data: &[u8], from: usize) -> Result<usize, ReadError> {
    match std::str::from_utf8(&data[from..]) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() => Ok(from + e.valid_up_to()),
        Err(_) => Err(ReadError::InvalidUtf8("text message")),
    }
}

/// A complete message; for text, `data[..checked]` is already known to be
/// UTF-8 and the rest is checked now.
fn whole(text: bool, data: BytesMut, checked: usize) -> Result<Incoming, ReadError> {
    if text {
        std::str::from_utf8(&data[checked..])
            .map_err(|_| ReadError::InvalidUtf8("text message"))?;
        Ok(Incoming::Text(data.freeze()))
    } else {
        Ok(Incoming::Binary(data.freeze()))
    }
}

/// XORs the payload with the client's 4-byte mask, eight bytes at a time.
fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A client frame: header, mask, masked payload.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        out
    }

    /// A reader on a real loopback socket whose peer writes `bytes`, then
    /// closes.
    async fn reader_fed(bytes: Vec<u8>, max: usize) -> FrameReader {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.expect("connect");
            for piece in bytes.chunks(1000) {
                client.write_all(piece).await.expect("write");
            }
        });
        let (server, _) = listener.accept().await.expect("accept");
        let (read, _write) = server.into_split();
        // The write half is dropped: reading stays possible.
        FrameReader::new(read.into(), &[], max, Duration::from_secs(30))
    }

    async fn read_all(mut reader: FrameReader) -> (Vec<Incoming>, Option<ReadError>) {
        let mut messages = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(m)) => messages.push(m),
                Ok(None) => return (messages, None),
                Err(e) => return (messages, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn whole_fragmented_and_control_messages() {
        let big: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        let mut bytes = frame(0x82, b"hello");
        bytes.extend(frame(0x89, b"are you there"));
        bytes.extend(frame(0x02, b"frag"));
        bytes.extend(frame(0x8A, b""));
        bytes.extend(frame(0x00, b"men"));
        bytes.extend(frame(0x80, b"ted"));
        bytes.extend(frame(0x82, &big));
        bytes.extend(frame(0x81, b"text"));
        bytes.extend(frame(0x88, &1000u16.to_be_bytes()));
        let (messages, error) = read_all(reader_fed(bytes, 100_000).await).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            messages,
            vec![
                Incoming::Binary(Bytes::from_static(b"hello")),
                Incoming::Ping(Bytes::from_static(b"are you there")),
                Incoming::Pong,
                Incoming::Binary(Bytes::from_static(b"fragmented")),
                Incoming::Binary(Bytes::from(big)),
                Incoming::Text(Bytes::from_static(b"text")),
                Incoming::Close(Some(1000)),
            ]
        );
    }

    #[tokio::test]
    async fn early_bytes_come_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (read, _write) = server.into_split();
        let mut reader = FrameReader::new(
            read.into(),
            &frame(0x82, b"early"),
            1024,
            Duration::from_secs(30),
        );
        let first = reader.next().await.expect("a message");
        assert_eq!(first, Some(Incoming::Binary(Bytes::from_static(b"early"))));
    }

    /// Each broken rule is refused with its own reason, and an oversize
    /// frame is refused from its header alone.
    #[tokio::test]
    async fn broken_rules_are_protocol_errors() {
        let unmasked = vec![0x82, 0x01, b'x'];
        let mut rsv = frame(0x82, b"x");
        rsv[0] |= 0x40;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (unmasked, "masked"),
            (rsv, "reserved bits"),
            (frame(0x83, b"x"), "reserved opcode"),
            (frame(0x09, b"x"), "fragmented control"),
            (frame(0x89, &[0u8; 126]), "125"),
            (frame(0x80, b"x"), "continuation"),
            (
                [frame(0x02, b"a"), frame(0x82, b"b")].concat(),
                "new message",
            ),
            (frame(0x88, b"x"), "1-byte"),
        ];
        for (bytes, reason) in cases {
            let (_, error) = read_all(reader_fed(bytes, 1024).await).await;
            match error {
                Some(ReadError::Protocol(message)) => {
                    assert!(
                        message.contains(reason),
                        "{message:?} should name {reason:?}"
                    );
                }
                other => panic!("expected a protocol error naming {reason:?}, got {other:?}"),
            }
        }
        // Only the 9-byte header of this 1 MiB frame is ever sent.
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 20).to_be_bytes());
        header.extend_from_slice(&MASK);
        let (_, error) = read_all(reader_fed(header, 1024).await).await;
        assert!(
            matches!(error, Some(ReadError::TooBig { size, max: 1024 }) if size == 1 << 20),
            "{error:?}"
        );
        // Fragments add up against the same limit.
        let split = [frame(0x02, &[1; 600]), frame(0x80, &[2; 600])].concat();
        let (_, error) = read_all(reader_fed(split, 1024).await).await;
        assert!(
            matches!(error, Some(ReadError::TooBig { size: 1200, .. })),
            "{error:?}"
        );
    }

    /// Feeds `bytes` to a parser in pieces of `chunk` bytes and collects
    /// what comes out, as the reader does.
    fn parse_chunked(bytes: &[u8], chunk: usize, max: usize) -> (Vec<Incoming>, Option<ReadError>) {
        let mut parser = FrameParser::new(&[], max);
        let mut messages = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            parser.buffer().extend_from_slice(piece);
            loop {
                match parser.parse() {
                    Ok(Some(m)) => messages.push(m),
                    Ok(None) => break,
                    Err(e) => return (messages, Some(e)),
                }
            }
        }
        (messages, None)
    }

    #[test]
    fn close_codes_and_reasons_follow_rfc_6455() {
        let close = |code: u16, reason: &[u8]| {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason);
            frame(0x88, &payload)
        };
        for code in [1000, 1001, 1003, 1007, 1011, 1012, 1014, 3000, 4999] {
            let (messages, error) = parse_chunked(&close(code, b"bye"), 1000, 1024);
            assert!(error.is_none(), "{code}: {error:?}");
            assert_eq!(messages, vec![Incoming::Close(Some(code))], "{code}");
        }
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
        ] {
            let (_, error) = parse_chunked(&close(code, b""), 1000, 1024);
            assert!(
                matches!(error, Some(ReadError::Protocol(m)) if m.contains("status code")),
                "{code}: {error:?}"
            );
        }
        let (messages, _) = parse_chunked(&frame(0x88, b""), 1000, 1024);
        assert_eq!(messages, vec![Incoming::Close(None)]);
        let (_, error) = parse_chunked(&close(1000, &[0xce, 0xba, 0xff]), 1000, 1024);
        assert!(
            matches!(error, Some(ReadError::InvalidUtf8(_))),
            "{error:?}"
        );
    }

    #[test]
    fn text_must_be_utf8_even_split_across_fragments() {
        let euro = "€".as_bytes();
        // A character cut between two fragments is fine.
        let split = [frame(0x01, &euro[..1]), frame(0x80, &euro[1..])].concat();
        let (messages, error) = parse_chunked(&split, 7, 1024);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            messages,
            vec![Incoming::Text(Bytes::from_static("€".as_bytes()))]
        );
        // Invalid bytes in a first fragment fail before the message ends.
        let (_, error) = parse_chunked(&frame(0x01, &[b'a', 0xff]), 1000, 1024);
        assert!(
            matches!(error, Some(ReadError::InvalidUtf8(_))),
            "{error:?}"
        );
        // A message ending inside a character fails at its end.
        let cut = [frame(0x01, b"ok"), frame(0x80, &euro[..2])].concat();
        let (_, error) = parse_chunked(&cut, 1000, 1024);
        assert!(
            matches!(error, Some(ReadError::InvalidUtf8(_))),
            "{error:?}"
        );
        // Binary is never checked.
        let (messages, error) = parse_chunked(&frame(0x82, &[0xff]), 1000, 1024);
        assert!(error.is_none());
        assert_eq!(
            messages,
            vec![Incoming::Binary(Bytes::from_static(&[0xff]))]
        );
    }

    /// Regression (defect 3, "a trickling client reserves a full message
    /// buffer"): a header announcing 1 MiB reserves nothing; the buffer
    /// holds what arrived.
    #[test]
    fn a_large_frame_header_reserves_nothing() {
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(1u64 << 20).to_be_bytes());
        header.extend_from_slice(&MASK);
        header.push(0x00);
        let mut parser = FrameParser::new(&header, 2 << 20);
        assert_eq!(parser.parse().expect("valid so far"), None);
        assert!(parser.mid_message());
        assert!(
            parser.buffer().capacity() < 1024,
            "reserved {} bytes for a frame that has not arrived",
            parser.buffer().capacity()
        );
    }

    /// Regression (defect 3): a message must complete within the message
    /// timeout of its first byte.
    #[tokio::test]
    async fn a_trickled_message_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (read, _write) = server.into_split();
        let timeout = Duration::from_millis(300);
        let mut reader = FrameReader::new(read.into(), &[], 1 << 20, timeout);
        let whole = frame(0x82, &[7; 1000]);
        // Half a frame, then nothing: the reader gives up at the deadline.
        client.write_all(&whole[..500]).await.expect("write");
        let started = std::time::Instant::now();
        let error = reader.next().await.expect_err("must time out");
        assert!(
            matches!(error, ReadError::Timeout(t) if t == timeout),
            "{error:?}"
        );
        assert!(started.elapsed() >= timeout);
    }

    /// Any split of a valid stream parses to the same messages.
    #[test]
    fn chunking_never_changes_the_result() {
        let mut bytes = frame(0x82, b"one");
        bytes.extend(frame(0x01, "dé".as_bytes()));
        bytes.extend(frame(0x89, b"p"));
        bytes.extend(frame(0x80, "jà".as_bytes()));
        bytes.extend(frame(0x82, &[9; 300]));
        let (expected, error) = parse_chunked(&bytes, bytes.len(), 1024);
        assert!(error.is_none(), "{error:?}");
        assert_eq!(expected.len(), 4);
        for chunk in 1..40 {
            let (messages, error) = parse_chunked(&bytes, chunk, 1024);
            assert!(error.is_none(), "chunk {chunk}: {error:?}");
            assert_eq!(messages, expected, "chunk {chunk}");
        }
    }

    #[test]
    fn unmask_matches_the_byte_rule() {
        for len in 0..40 {
            let mut data: Vec<u8> = (0..len as u8).collect();
            unmask(&mut data, MASK);
            let expected: Vec<u8> = (0..len as u8).map(|b| b ^ MASK[b as usize % 4]).collect();
            assert_eq!(data, expected, "length {len}");
        }
    }
}
