//! An upgraded TLS connection split in two for the session's reader and
//! its writer task, driving rustls directly on the TCP socket (not through
//! `tokio-rustls`, which served the HTTP request): the reader waits for
//! the socket to be readable before it holds any buffer, as on plain TCP,
//! so an idle `wss` connection holds only rustls' own state.
//!
//! Both halves share the socket and the rustls connection (under a mutex
//! never held across an await). The reader decrypts into the caller's
//! buffer; the writer encrypts a batch and pushes the records out,
//! waiting for the socket to drain before taking more (so rustls never
//! buffers more than one batch).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use rustls::ServerConnection;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// Most plaintext bytes taken from rustls per read call.
const MAX_READ: usize = 16 * 1024;

#[derive(Debug)]
struct Shared {
    tcp: TcpStream,
    tls: Mutex<ServerConnection>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ServerConnection> {
        self.tls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The read half.
#[derive(Debug)]
pub(crate) struct TlsRead {
    shared: Arc<Shared>,
    /// rustls may hold decrypted bytes not yet taken: read before waiting.
    buffered: bool,
}

/// The write half.
#[derive(Debug)]
pub(crate) struct TlsWrite {
    shared: Arc<Shared>,
    close_notify_sent: bool,
}

/// Splits a connection whose handshake is done.
pub(crate) fn split(tcp: TcpStream, tls: ServerConnection) -> (TlsRead, TlsWrite) {
    let shared = Arc::new(Shared {
        tcp,
        tls: Mutex::new(tls),
    });
    (
        TlsRead {
            shared: shared.clone(),
            buffered: true,
        },
        TlsWrite {
            shared,
            close_notify_sent: false,
        },
    )
}

/// The socket as blocking-style I/O for rustls: `WouldBlock` when not ready.
struct Io<'a>(&'a TcpStream);

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl TlsRead {
    /// Resolves when [`TlsRead::try_read_buf`] may have bytes.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        if self.buffered {
            return Ok(());
        }
        self.shared.tcp.readable().await
    }

    /// Decrypted bytes appended to `buf` (its spare capacity, at most
    /// [`MAX_READ`]); `Ok(0)` at the end of the stream, `WouldBlock` when
    /// nothing is there yet.
    pub(crate) fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let shared = self.shared.clone();
        let mut tls = shared.lock();
        loop {
            match take_plaintext(&mut tls, buf) {
                Ok(n) => {
                    self.buffered = n > 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed the TCP connection without close_notify
                // (browsers do): an end of stream like any other.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match tls.read_tls(&mut Io(&shared.tcp)) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    let processed = tls.process_new_packets();
                    // Alerts, key-update answers: out now if the socket
                    // takes them, else with the writer's next write.
                    while tls.wants_write() {
                        if tls.write_tls(&mut Io(&shared.tcp)).is_err() {
                            break;
                        }
                    }
                    if let Err(e) = processed {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.buffered = false;
                    }
                    return Err(e);
                }
            }
        }
    }
}

fn take_plaintext(tls: &mut ServerConnection, buf: &mut BytesMut) -> io::Result<usize> {
    let start = buf.len();
    let room = (buf.capacity() - start).clamp(1, MAX_READ);
    buf.resize(start + room, 0);
    let result = tls.reader().read(&mut buf[start..]);
    buf.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

impl TlsWrite {
    /// Pushes every encrypted byte rustls holds into the socket.
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let tcp = &self.shared.tcp;
        loop {
            {
                let mut tls = self.shared.lock();
                if !tls.wants_write() {
                    return Poll::Ready(Ok(()));
                }
                match tls.write_tls(&mut Io(tcp)) {
                    Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            ready!(tcp.poll_write_ready(cx))?;
        }
    }
}

impl AsyncWrite for TlsWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Take a new batch only once the last one is out.
        ready!(this.poll_drain(cx))?;
        let n = this.shared.lock().writer().write(buf)?;
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.close_notify_sent {
            this.shared.lock().send_close_notify();
            this.close_notify_sent = true;
        }
        ready!(this.poll_drain(cx))?;
        let _ = socket2::SockRef::from(&this.shared.tcp).shutdown(std::net::Shutdown::Write);
        Poll::Ready(Ok(()))
    }
}
