//! What the ports of the upstream Engine.IO and Socket.IO suites share:
//! the long-polling query of a session and the checks of the open packet,
//! against a broker configured with the suites' settings
//! ([`PING_INTERVAL_MS`], [`PING_TIMEOUT_MS`], [`MAX_PAYLOAD`]).

use serde_json::Value;

/// The suites' `pingInterval`, in milliseconds.
pub const PING_INTERVAL_MS: u64 = 300;
/// The suites' `pingTimeout`, in milliseconds.
pub const PING_TIMEOUT_MS: u64 = 200;
/// The suites' `maxPayload`, in bytes.
pub const MAX_PAYLOAD: usize = 1_000_000;

/// The query of a request of long-polling session `sid`.
pub fn sid_query(sid: &str) -> String {
    format!("EIO=4&transport=polling&sid={sid}")
}

/// The JSON of an open packet (`0{…}`).
pub fn open_packet(text: &str) -> Value {
    let json = text
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an open packet: {text:?}"));
    serde_json::from_str(json).expect("open packet JSON")
}

/// Checks an open packet as the suites do (exactly its five keys, the
/// suites' settings, `upgrades` as given); its sid.
pub fn check_open(value: &Value, upgrades: Value) -> String {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert_eq!(value["upgrades"], upgrades);
    assert_eq!(value["pingInterval"], PING_INTERVAL_MS);
    assert_eq!(value["pingTimeout"], PING_TIMEOUT_MS);
    assert_eq!(value["maxPayload"], MAX_PAYLOAD);
    value["sid"].as_str().expect("sid is a string").to_owned()
}
