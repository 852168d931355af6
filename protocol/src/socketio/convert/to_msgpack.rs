//! JSON arguments (with placeholders for binary attachments) to MessagePack
//! (the rules are in the parent module's documentation).

use bytes::Bytes;

use super::{ConvertError, Payload};
use crate::socketio::json::Json;

/// Converts Socket.IO arguments into a Herald payload. `attachments` is
/// `Some` for BINARY_EVENT/BINARY_ACK (placeholders are resolved against
/// it and every attachment must be used) and `None` for text packets
/// (placeholder-shaped objects stay objects).
pub fn args_to_payload(
    args: &[Json],
    attachments: Option<&[Bytes]>,
) -> Result<Payload, ConvertError> {
    let mut binaries = attachments.map(|attachments| Binaries {
        attachments,
        used: vec![false; attachments.len()],
    });
    let mut out = Vec::new();
    let spread = args.len() != 1;
    if spread {
        let _ = rmp::encode::write_array_len(&mut out, len_u32(args.len()));
        for arg in args {
            write_value(&mut out, arg, binaries.as_mut())?;
        }
    } else {
        for arg in args {
            write_value(&mut out, arg, binaries.as_mut())?;
        }
    }
    if let Some(binaries) = binaries {
        if let Some(unused) = binaries.used.iter().position(|used| !used) {
            return Err(ConvertError::UnusedAttachment(unused));
        }
    }
    Ok(Payload {
        bytes: Bytes::from(out),
        spread,
    })
}

/// The MessagePack map of a CONNECT auth payload (`{}` when there is none),
/// for lifecycle events.
pub fn auth_to_payload(auth: Option<&Json>) -> Bytes {
    let mut out = Vec::new();
    write_auth(&mut out, auth);
    Bytes::from(out)
}

/// Appends the MessagePack of a CONNECT auth payload (`{}` when none), to
/// embed it in a larger map.
pub fn write_auth(out: &mut Vec<u8>, auth: Option<&Json>) {
    match auth {
        // Without attachments there is nothing to resolve, so this cannot
        // fail; an empty map is still the right answer if it ever did.
        Some(auth) => {
            let start = out.len();
            if write_value(out, auth, None).is_err() {
                out.truncate(start);
                let _ = rmp::encode::write_map_len(out, 0);
            }
        }
        None => {
            let _ = rmp::encode::write_map_len(out, 0);
        }
    }
}

/// The attachments of a binary packet, and which were referenced.
struct Binaries<'a> {
    attachments: &'a [Bytes],
    used: Vec<bool>,
}

fn write_value(
    out: &mut Vec<u8>,
    value: &Json,
    mut binaries: Option<&mut Binaries<'_>>,
) -> Result<(), ConvertError> {
    // Writes into a Vec cannot fail.
    match value {
        Json::Null => {
            let _ = rmp::encode::write_nil(out);
        }
        Json::Bool(b) => {
            let _ = rmp::encode::write_bool(out, *b);
        }
        Json::UInt(n) => {
            let _ = rmp::encode::write_uint(out, *n);
        }
        Json::Int(n) => {
            let _ = rmp::encode::write_sint(out, *n);
        }
        Json::Float(f) => {
            let _ = rmp::encode::write_f64(out, *f);
        }
        Json::Str(s) => {
            let _ = rmp::encode::write_str(out, s);
        }
        Json::Array(items) => {
            let _ = rmp::encode::write_array_len(out, len_u32(items.len()));
            for item in items {
                write_value(out, item, binaries.as_deref_mut())?;
            }
        }
        Json::Object(entries) => {
            if let Some(binaries) = binaries.as_deref_mut() {
                if value.get("_placeholder") == Some(&Json::Bool(true)) {
                    let bin = placeholder(value, binaries)?;
                    let _ = rmp::encode::write_bin(out, bin);
                    return Ok(());
                }
            }
            let _ = rmp::encode::write_map_len(out, len_u32(entries.len()));
            for (key, item) in entries {
                let _ = rmp::encode::write_str(out, key);
                write_value(out, item, binaries.as_deref_mut())?;
            }
        }
    }
    Ok(())
}

/// The attachment a placeholder object names.
fn placeholder<'a>(value: &Json, binaries: &mut Binaries<'a>) -> Result<&'a [u8], ConvertError> {
    let Some(&Json::UInt(num)) = value.get("num") else {
        return Err(ConvertError::PlaceholderWithoutNum);
    };
    let count = binaries.attachments.len();
    let index = usize::try_from(num)
        .ok()
        .filter(|&i| i < count)
        .ok_or(ConvertError::PlaceholderOutOfRange { num, count })?;
    binaries.used[index] = true;
    Ok(&binaries.attachments[index])
}

/// A length as MessagePack's 32-bit count. Input is bounded by the
/// transport's message size, far below 2^32 elements.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
