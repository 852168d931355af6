//! The Engine.IO echo app (`testing.engineio_echo_endpoint`): every
//! message packet is sent back unchanged, text as text and binary as
//! binary, through the same Engine.IO code as Socket.IO sessions, so the
//! upstream Engine.IO test suite checks the transports, the upgrade and
//! the heartbeat.

use std::sync::Arc;

use tracing::debug;

use super::{EngineConn, Message};
use crate::state::Shared;

/// Echoes until the session ends.
pub(crate) async fn serve(mut conn: EngineConn, _shared: Arc<Shared>) {
    let reason = loop {
        match conn.recv().await {
            Ok(Some(Message::Text(text))) => {
                // The reader checked the text is UTF-8.
                conn.send_text(&String::from_utf8_lossy(&text));
            }
            Ok(Some(Message::Binary(data))) => {
                conn.send_binary(&data);
            }
            Ok(None) => {}
            Err(reason) => break reason,
        }
    };
    let sid = conn.engine_sid().to_owned();
    let transport = conn.transport().as_str();
    let reason = conn.finish(reason).await;
    debug!(
        sid,
        transport,
        reason = reason.as_str(),
        "engine.io echo session closed"
    );
}
