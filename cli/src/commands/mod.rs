//! One module per subcommand. Each checks its arguments (names, JSON)
//! before connecting, so bad input fails at once, even with no broker.

pub mod admin;
pub mod publish;
pub mod reply;
pub mod request;
pub mod sub;

use tokio::sync::mpsc;

use crate::error::CliError;
use crate::session::Session;

/// Ctrl-C (SIGINT), watched from the moment [`Interrupt::listen`] is
/// called: a command calls it before announcing it is ready, so a Ctrl-C
/// right after the announcement is not lost (or fatal).
#[derive(Debug)]
pub(crate) struct Interrupt {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupt {
    /// Starts watching for Ctrl-C. If the signal cannot be watched,
    /// [`Interrupt::wait`] never resolves (Ctrl-C then ends the process
    /// the default way).
    pub(crate) fn listen() -> Interrupt {
        Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves at the first Ctrl-C since [`Interrupt::listen`].
    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            if signal.recv().await.is_some() {
                return;
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// Hands each item of `items` to `handle` until `count` items were handled,
/// Ctrl-C, or `items` ends. The SDK ends it by dropping the handler that
/// feeds it, which happens when the connection is lost: that is an error.
pub(crate) async fn take_until_done<T>(
    items: &mut mpsc::Receiver<T>,
    count: Option<u64>,
    interrupt: &mut Interrupt,
    session: &Session,
    mut handle: impl FnMut(T) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let mut handled: u64 = 0;
    while count.is_none_or(|count| handled < count) {
        tokio::select! {
            () = interrupt.wait() => break,
            item = items.recv() => match item {
                Some(item) => {
                    handle(item)?;
                    handled += 1;
                }
                None => return Err(session.connection_lost()),
            },
        }
    }
    Ok(())
}

/// `NAME in /namespace`, for notes and error messages.
pub(crate) fn in_namespace(name: &str, namespace: &str) -> String {
    format!("{name:?} in {namespace}")
}
