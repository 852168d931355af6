//! The dispatcher: reads what the backplane received from other nodes and
//! hands it to the router, one message at a time in arrival order (so one
//! publisher's events keep their order across nodes). It is the only task
//! that holds both ends, so the backend never names the router.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::backplane::Inbound;
use crate::mirror;
use crate::state::Shared;

/// Runs until the backplane drops its sender: it left the cluster (the
/// last step of a shutdown, so sessions still draining get events from
/// other nodes until then).
pub(crate) async fn run(shared: Arc<Shared>, mut inbox: mpsc::Receiver<Inbound>) {
    let max_rooms = shared.settings.limits.max_rooms_per_connection;
    while let Some(message) = inbox.recv().await {
        let message = match (message, &shared.mirror, &shared.backplane) {
            (
                Inbound::Stamped {
                    here,
                    emit,
                    sender,
                    stamp,
                },
                Some(mirror),
                Some(backplane),
            ) => {
                let sides = (&**mirror, &**backplane);
                mirror::on_stamped(&shared, sides, here, (emit, sender), stamp).await;
                continue;
            }
            (
                Inbound::CatchUp {
                    namespace,
                    since,
                    done,
                },
                Some(mirror),
                Some(backplane),
            ) => {
                let sides = (&**mirror, &**backplane);
                mirror::on_catch_up(&shared, sides, &namespace, since).await;
                let _ = done.send(());
                continue;
            }
            (message, _, _) => message,
        };
        if !shared.router.dispatch(message, max_rooms)
            && let Some(backplane) = &shared.backplane
        {
            backplane.undeliverable();
        }
    }
}
