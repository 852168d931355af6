//! [`Subscription`]: the handle of one registered handler.

use crate::client::Client;
use crate::dispatch::SubKey;
use crate::error::Error;

/// One registered handler, returned by [`Namespace::on`](crate::Namespace::on)
/// and its siblings.
///
/// Dropping it does NOT unsubscribe: the handler stays registered (and is
/// restored after reconnects) for the client's lifetime. Call
/// [`Subscription::unsubscribe`] to remove it. Holding it keeps the client's
/// connection open.
#[derive(Debug)]
pub struct Subscription {
    client: Client,
    key: SubKey,
    handler: u64,
}

impl Subscription {
    pub(crate) fn new(client: Client, key: SubKey, handler: u64) -> Subscription {
        Subscription {
            client,
            key,
            handler,
        }
    }

    /// The namespace subscribed in.
    pub fn namespace(&self) -> &str {
        &self.key.namespace
    }

    /// The event name or pattern subscribed to.
    pub fn event(&self) -> &str {
        &self.key.event
    }

    /// The queue group, for [`Namespace::on_queue`](crate::Namespace::on_queue).
    pub fn group(&self) -> Option<&str> {
        self.key.group.as_deref()
    }

    /// True for a responder ([`Namespace::on_request`](crate::Namespace::on_request)).
    pub fn is_responder(&self) -> bool {
        self.key.responder
    }

    /// Removes the handler; events already queued for it still run. The
    /// broker subscription goes when the last handler of the same
    /// (namespace, pattern, group, responder) goes.
    pub async fn unsubscribe(self) -> Result<(), Error> {
        self.client
            .shared()
            .unsubscribe(&self.key, self.handler)
            .await
    }
}
