//! TLS connections driven through rustls' unbuffered API
//! ([`UnbufferedServerConnection`]): rustls keeps its protocol state and
//! record keys, and the buffers are ours, so a connection holds a buffer
//! only while bytes are in flight. Ciphertext read from the socket waits
//! in `incoming` until rustls has processed it (a partial record, a
//! handshake message split across records), and the allocation is let go
//! as soon as nothing is left in it; ciphertext to send waits in
//! `outgoing` until the socket took it, then that goes too. An idle `wss`
//! connection therefore holds only rustls' state, as an idle `ws` one holds
//! no buffer at all (the buffered `ServerConnection` would keep its 4 KiB
//! incoming-record buffer for good once a record had been read).
//!
//! Three stages, one [`Engine`]:
//! - [`accept`]: the handshake (the caller bounds it in time);
//! - [`TlsStream`]: `AsyncRead`/`AsyncWrite` for hyper's HTTP/1
//!   connection, the request and the upgrade;
//! - after a WebSocket upgrade, [`split`] into the session reader's half
//!   and the writer task's half, which share the socket and the engine
//!   (under a mutex never held across an await). The reader waits for the
//!   socket to be readable before it holds any buffer, as on plain TCP,
//!   and decrypts into the caller's buffer; the writer encrypts a batch
//!   into `outgoing` and pushes it out, waiting for the socket to drain
//!   before it takes more (so at most one batch is ever held).
//!
//! Whoever adds bytes to `incoming` (the reading side, under the lock)
//! processes every whole record in it before letting go of the lock, so
//! what the other side finds there is at most part of a record: the
//! writer never meets application data it would have to hand over.
//! rustls needs the same `incoming` buffer on every call (a handshake
//! message split across records is reassembled in it), which is why both
//! halves go through the one engine.

use std::fmt;
use std::io;
use std::mem;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use rustls::ServerConfig;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError,
    UnbufferedStatus, WriteTraffic,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Ciphertext one read takes from the socket (at most).
const READ_CHUNK: usize = 16 * 1024;
/// Most ciphertext held unprocessed: a handshake message of up to 64 KiB
/// (the bound rustls' buffered connection sets) and a record beside it.
/// Past application-data records, only part of one record is ever held.
const MAX_INCOMING: usize = 0x1_0000 + 18 * 1024;
/// Most plaintext one write encrypts (the writer's batches are at most
/// 64 KiB, or one larger frame, which then goes in several writes).
const MAX_WRITE: usize = 64 * 1024;
/// The most plaintext bytes in one TLS record.
const MAX_FRAGMENT: usize = 16 * 1024;
/// Room for one record's header, explicit nonce (TLS 1.2), content type
/// (TLS 1.3) and tag; more than any suite rustls offers needs.
const RECORD_OVERHEAD: usize = 64;

/// What to do once rustls lets the connection send application data.
#[derive(Clone, Copy)]
enum Act<'a> {
    /// Only process what was read.
    Read,
    /// Encrypt (a prefix of) these bytes into `outgoing`.
    Encrypt(&'a [u8]),
    /// Encrypt a `close_notify` alert into `outgoing`.
    CloseNotify,
}

/// Where [`Engine::drive`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driven {
    /// The handshake needs more bytes from the peer.
    Handshaking,
    /// Everything read is processed; application data may be sent.
    Ready,
    /// This many plaintext bytes were encrypted into `outgoing`.
    Wrote(usize),
    /// Both sides sent `close_notify`.
    Closed,
}

/// One connection's TLS: rustls' state machine and the bytes in flight.
struct Engine {
    conn: UnbufferedServerConnection,
    /// Ciphertext read, `incoming[taken..]` not yet processed (rustls'
    /// discards advance `taken`; the front is dropped before the next
    /// read); no allocation when idle (see [`Engine::let_go`]).
    incoming: Vec<u8>,
    taken: usize,
    /// Ciphertext for the socket, `outgoing[sent..]` still to go; freed
    /// once all of it is out.
    outgoing: Vec<u8>,
    sent: usize,
    /// Plaintext decrypted and not yet read: what hyper's read buffer did
    /// not take during the HTTP stage, handed to the reader after a split.
    plain: BytesMut,
    /// The peer sent `close_notify`, or closed the TCP connection: no more
    /// application data will come.
    peer_done: bool,
    close_notify_queued: bool,
    /// rustls failed: the connection is finished (rustls must not be
    /// called again, it would refuse the same bytes a second time).
    failed: bool,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("handshaking", &self.conn.is_handshaking())
            .field("incoming", &(self.incoming.len() - self.taken))
            .field("outgoing", &(self.outgoing.len() - self.sent))
            .field("plain", &self.plain.len())
            .field("peer_done", &self.peer_done)
            .finish_non_exhaustive()
    }
}

fn tls_error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

impl Engine {
    fn new(config: Arc<ServerConfig>) -> io::Result<Engine> {
        Ok(Engine {
            conn: UnbufferedServerConnection::new(config).map_err(tls_error)?,
            incoming: Vec::new(),
            taken: 0,
            outgoing: Vec::new(),
            sent: 0,
            plain: BytesMut::new(),
            peer_done: false,
            close_notify_queued: false,
            failed: false,
        })
    }

    /// Runs rustls over what `incoming` holds until it needs more bytes
    /// (or, after the handshake, has nothing more to do): application
    /// data is appended to `plain`, handshake records, alerts and
    /// key-update answers to `outgoing`; then does `act` if the
    /// connection may send. On an error, the alert rustls owes the peer
    /// (if any) is left in `outgoing`.
    fn drive(&mut self, act: Act<'_>, plain: &mut BytesMut) -> io::Result<Driven> {
        if self.failed {
            return Err(tls_error("the TLS connection failed"));
        }
        let driven = self.run(act, plain);
        self.failed = driven.is_err();
        driven
    }

    /// [`Engine::drive`] on a connection that has not failed.
    fn run(&mut self, act: Act<'_>, plain: &mut BytesMut) -> io::Result<Driven> {
        loop {
            let UnbufferedStatus { mut discard, state } = self
                .conn
                .process_tls_records(&mut self.incoming[self.taken..]);
            let state = match state {
                Ok(state) => state,
                Err(error) => {
                    self.taken += discard;
                    self.queue_alert();
                    return Err(tls_error(error));
                }
            };
            let done = match state {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(tls_error)?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                    None
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    encode(&mut data, &mut self.outgoing)?;
                    None
                }
                // Encoded bytes stay in `outgoing`, in order, until the
                // socket takes them.
                ConnectionState::TransmitTlsData(data) => {
                    data.done();
                    None
                }
                ConnectionState::PeerClosed => {
                    self.peer_done = true;
                    None
                }
                ConnectionState::Closed => Some(Driven::Closed),
                ConnectionState::BlockedHandshake => Some(Driven::Handshaking),
                ConnectionState::WriteTraffic(mut traffic) => Some(match act {
                    Act::Read => Driven::Ready,
                    Act::Encrypt(data) => {
                        let data = &data[..data.len().min(MAX_WRITE)];
                        encrypt(&mut traffic, data, &mut self.outgoing)?;
                        Driven::Wrote(data.len())
                    }
                    Act::CloseNotify => {
                        close_notify(&mut traffic, &mut self.outgoing)?;
                        Driven::Ready
                    }
                }),
                // Early data is never accepted (`max_early_data_size` is 0).
                _ => return Err(tls_error("unexpected TLS connection state")),
            };
            self.taken += discard;
            if let Some(done) = done {
                return Ok(done);
            }
        }
    }

    /// After an error: the alert rustls queued, encoded into `outgoing`.
    /// rustls hands out what it queued before it looks at the incoming
    /// bytes again, so one call takes the alert and goes no further (a
    /// second would process the bytes it refused once more).
    fn queue_alert(&mut self) {
        let UnbufferedStatus { discard, state } = self
            .conn
            .process_tls_records(&mut self.incoming[self.taken..]);
        if let Ok(ConnectionState::EncodeTlsData(mut data)) = state {
            let _ = encode(&mut data, &mut self.outgoing);
        }
        self.taken += discard;
    }

    /// One non-blocking read of ciphertext into `incoming`.
    fn read_from(&mut self, tcp: &TcpStream) -> io::Result<usize> {
        if self.taken > 0 {
            self.incoming.drain(..self.taken);
            self.taken = 0;
        }
        if self.incoming.len() >= MAX_INCOMING {
            return Err(tls_error("TLS message too large"));
        }
        if self.incoming.capacity() - self.incoming.len() < READ_CHUNK / 4 {
            self.incoming.reserve(READ_CHUNK);
        }
        match tcp.try_read_buf(&mut self.incoming) {
            Ok(0) => {
                self.peer_done = true;
                Ok(0)
            }
            other => other,
        }
    }

    /// Processes what was read; application data goes to `plain`.
    fn process(&mut self, plain: &mut BytesMut) -> io::Result<Driven> {
        self.drive(Act::Read, plain)
    }

    /// Encrypts a prefix of `data` into `outgoing`; how much.
    fn encrypt(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut plain = mem::take(&mut self.plain);
        let driven = self.drive(Act::Encrypt(data), &mut plain);
        self.plain = plain;
        match driven? {
            Driven::Wrote(n) => Ok(n),
            Driven::Closed => Err(io::ErrorKind::BrokenPipe.into()),
            Driven::Handshaking | Driven::Ready => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Queues `close_notify` (once).
    fn close_notify(&mut self) -> io::Result<()> {
        if mem::replace(&mut self.close_notify_queued, true) {
            return Ok(());
        }
        let mut plain = mem::take(&mut self.plain);
        let driven = self.drive(Act::CloseNotify, &mut plain);
        self.plain = plain;
        driven.map(drop)
    }

    /// Pushes `outgoing` into the socket until it is all out (`Ok(true)`)
    /// or the socket is full (`Ok(false)`).
    fn send(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while self.sent < self.outgoing.len() {
            match tcp.try_write(&self.outgoing[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        if self.sent > 0 || self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
            self.sent = 0;
        }
        Ok(true)
    }

    /// Lets go of the incoming buffer when nothing waits in it (before
    /// waiting for the peer).
    fn let_go(&mut self) {
        if self.taken == self.incoming.len() && self.incoming.capacity() > 0 {
            self.incoming = Vec::new();
            self.taken = 0;
        }
    }
}

/// Why a rustls call could not write into the room it was given.
enum Unwritten {
    /// It needs this many bytes.
    Needs(usize),
    /// It failed.
    Failed(String),
}

impl From<EncodeError> for Unwritten {
    fn from(error: EncodeError) -> Unwritten {
        match error {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Unwritten::Needs(required_size)
            }
            other => Unwritten::Failed(other.to_string()),
        }
    }
}

impl From<EncryptError> for Unwritten {
    fn from(error: EncryptError) -> Unwritten {
        match error {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Unwritten::Needs(required_size)
            }
            other => Unwritten::Failed(other.to_string()),
        }
    }
}

/// Appends what `write` puts into a slice of `out`, starting with `room`
/// bytes and growing to what rustls says it needs.
fn append(
    out: &mut Vec<u8>,
    mut room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Unwritten>,
) -> io::Result<()> {
    let start = out.len();
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Unwritten::Needs(required)) if required > room => room = required,
            Err(Unwritten::Needs(required)) => {
                out.truncate(start);
                return Err(tls_error(format!(
                    "rustls asked for {required} bytes with {room} given"
                )));
            }
            Err(Unwritten::Failed(message)) => {
                out.truncate(start);
                return Err(tls_error(message));
            }
        }
    }
}

/// Appends a handshake record (or alert) rustls encoded to `out`.
fn encode(data: &mut EncodeTlsData<'_, ServerConnectionData>, out: &mut Vec<u8>) -> io::Result<()> {
    // The first call only learns the size (the record is ready-made).
    append(out, 0, |buf| Ok(data.encode(buf)?))
}

/// Appends `data`, encrypted into records, to `out`.
fn encrypt(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    data: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let records = data.len().div_ceil(MAX_FRAGMENT).max(1);
    let room = data.len() + records * RECORD_OVERHEAD;
    // Records rustls queued first (a key-update answer) take room too.
    append(out, room, |buf| Ok(traffic.encrypt(data, buf)?))
}

/// Appends a `close_notify` alert to `out`.
fn close_notify(
    traffic: &mut WriteTraffic<'_, ServerConnectionData>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    append(out, RECORD_OVERHEAD, |buf| {
        Ok(traffic.queue_close_notify(buf)?)
    })
}

/// The TLS handshake on `tcp` with `config`; a stream for HTTP once it is
/// done. Not bounded in time here (the caller does that). A failed
/// handshake first sends the peer the alert that says why.
pub(crate) async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
    let mut engine = Engine::new(config)?;
    let mut plain = BytesMut::new();
    loop {
        let driven = engine.process(&mut plain);
        let sent = std::future::poll_fn(|cx| engine.poll_send(&tcp, cx)).await;
        let driven = driven?;
        sent?;
        if !engine.conn.is_handshaking() {
            break;
        }
        if engine.peer_done || driven == Driven::Closed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        engine.let_go();
        tcp.readable().await?;
        match engine.read_from(&tcp) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    engine.let_go();
    // The client may have sent its request with its last handshake flight.
    engine.plain = plain;
    Ok(TlsStream { tcp, engine })
}

impl Engine {
    /// [`Engine::send`] until all is out, waiting for the socket.
    fn poll_send(&mut self, tcp: &TcpStream, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.send(tcp)? {
                return Poll::Ready(Ok(()));
            }
            ready!(tcp.poll_write_ready(cx))?;
        }
    }
}

/// A TLS connection after its handshake, for hyper (the HTTP request and
/// the upgrade); [`split`] after an upgrade.
#[derive(Debug)]
pub(crate) struct TlsStream {
    tcp: TcpStream,
    engine: Engine,
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let TlsStream { tcp, engine } = self.get_mut();
        loop {
            if !engine.plain.is_empty() {
                let n = buf.remaining().min(engine.plain.len());
                buf.put_slice(&engine.plain[..n]);
                engine.plain.advance(n);
                if engine.plain.is_empty() {
                    engine.plain = BytesMut::new();
                }
                return Poll::Ready(Ok(()));
            }
            if engine.peer_done {
                return Poll::Ready(Ok(()));
            }
            // Alerts and key-update answers: out now if the socket takes
            // them, else with the next write.
            engine.send(tcp)?;
            engine.let_go();
            ready!(tcp.poll_read_ready(cx))?;
            match engine.read_from(tcp) {
                Ok(0) => return Poll::Ready(Ok(())),
                Ok(_) => {
                    let mut plain = mem::take(&mut engine.plain);
                    let driven = engine.process(&mut plain);
                    engine.plain = plain;
                    // An alert that says why goes out before the error.
                    let _ = engine.send(tcp);
                    if driven? == Driven::Closed {
                        engine.peer_done = true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let TlsStream { tcp, engine } = self.get_mut();
        // Take new bytes only once the last ones are out.
        ready!(engine.poll_send(tcp, cx))?;
        let n = engine.encrypt(buf)?;
        engine.send(tcp)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let TlsStream { tcp, engine } = self.get_mut();
        engine.poll_send(tcp, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let TlsStream { tcp, engine } = self.get_mut();
        engine.close_notify()?;
        ready!(engine.poll_send(tcp, cx))?;
        let _ = socket2::SockRef::from(&*tcp).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug)]
struct Shared {
    tcp: TcpStream,
    engine: Mutex<Engine>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pushes everything queued into the socket, waiting for it to drain.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.lock().send(&self.tcp)? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.tcp.poll_write_ready(cx))?;
        }
    }
}

/// The read half.
#[derive(Debug)]
pub(crate) struct TlsRead {
    shared: Arc<Shared>,
    /// Plaintext may wait in the engine (left from the HTTP stage): read
    /// before waiting for the socket.
    buffered: bool,
}

/// The write half.
#[derive(Debug)]
pub(crate) struct TlsWrite {
    shared: Arc<Shared>,
}

/// Splits an upgraded connection.
pub(crate) fn split(stream: TlsStream) -> (TlsRead, TlsWrite) {
    let TlsStream { tcp, engine } = stream;
    let buffered = !engine.plain.is_empty();
    let shared = Arc::new(Shared {
        tcp,
        engine: Mutex::new(engine),
    });
    (
        TlsRead {
            shared: shared.clone(),
            buffered,
        },
        TlsWrite { shared },
    )
}

impl TlsRead {
    /// Resolves when [`TlsRead::try_read_buf`] may have bytes.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if self.buffered {
            return Ok(());
        }
        self.shared.tcp.readable().await
    }

    /// Decrypted bytes appended to `buf`; `Ok(0)` at the end of the
    /// stream (`close_notify`, or the TCP connection closed without it,
    /// as browsers do), `WouldBlock` when nothing is there yet. When it
    /// returns, no buffer of this connection's is held beyond part of a
    /// record still to come.
    pub(crate) fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.buffered = false;
        let shared = &*self.shared;
        let mut engine = shared.lock();
        if !engine.plain.is_empty() {
            let plain = mem::take(&mut engine.plain);
            buf.extend_from_slice(&plain);
            return Ok(plain.len());
        }
        let start = buf.len();
        loop {
            if engine.peer_done {
                engine.let_go();
                return Ok(0);
            }
            match engine.read_from(&shared.tcp) {
                Ok(0) => {}
                Ok(_) => {
                    let driven = engine.process(buf);
                    // Alerts, key-update answers: out now if the socket
                    // takes them, else with the writer's next write.
                    let _ = engine.send(&shared.tcp);
                    if driven? == Driven::Closed {
                        engine.peer_done = true;
                    }
                    if buf.len() > start {
                        engine.let_go();
                        return Ok(buf.len() - start);
                    }
                }
                Err(e) => {
                    engine.let_go();
                    return Err(e);
                }
            }
        }
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &*self.shared;
        // Take a new batch only once the last one is out.
        ready!(shared.poll_drain(cx))?;
        let mut engine = shared.lock();
        let n = engine.encrypt(buf)?;
        engine.send(&shared.tcp)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &*self.shared;
        shared.lock().close_notify()?;
        ready!(shared.poll_drain(cx))?;
        let _ = socket2::SockRef::from(&shared.tcp).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
