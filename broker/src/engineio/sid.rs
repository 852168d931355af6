//! Engine.IO session ids: 128 random bits from the operating system's
//! seeded generator (`rand`'s thread RNG, a CSPRNG), base64url without
//! padding (22 characters). Anyone holding a long-polling sid can read
//! that session, so it must not be guessable from other sids.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A fresh session id.
pub(crate) fn new_sid() -> String {
    let bits: [u8; 16] = rand::random();
    URL_SAFE_NO_PAD.encode(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_long_url_safe_and_distinct() {
        let sids: std::collections::HashSet<String> = (0..1000).map(|_| new_sid()).collect();
        assert_eq!(sids.len(), 1000);
        for sid in &sids {
            assert_eq!(sid.len(), 22);
            assert!(
                sid.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{sid}"
            );
        }
    }
}
