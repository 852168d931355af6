//! Presence over Redis: each node keeps its members in one hash,
//! `{prefix}:node:{id}:presence` (field `{namespace}\n{sid}`, value the
//! member as a MessagePack map), written through the same ordered queue
//! as the node's publishes. The hash expires with the node
//! (`cluster.node_ttl`, refreshed every heartbeat) and is deleted when
//! the node is pruned or leaves; a reader only reads nodes whose liveness
//! key still exists, so a killed node's members disappear within
//! `node_ttl`.
//!
//! The node also keeps the hash's content in memory (bounded by its
//! connections), to write it again whole after Redis came back (or a
//! write could not be queued). The rewrite goes through the same queue
//! as the single writes, so no write queued after its snapshot can land
//! before it.

use std::collections::{BTreeMap, HashMap};

use redis::RedisResult;
use redis::aio::ConnectionManager;

use super::keys::Keys;
use crate::backplane::Member;

/// A presence field of this node's hash: `{namespace}\n{sid}`.
pub(super) fn field(namespace: &str, sid: &str) -> String {
    format!("{namespace}\n{sid}")
}

/// A member as stored.
pub(super) fn encode(member: &Member) -> Vec<u8> {
    rmp_serde::to_vec_named(member).unwrap_or_default()
}

/// What this node has written to its presence hash.
#[derive(Debug, Default)]
pub(super) struct Mirror {
    pub(super) fields: BTreeMap<String, Vec<u8>>,
}

/// The members of `namespace` on the other live nodes.
pub(super) async fn read(
    mut connection: ConnectionManager,
    keys: &Keys,
    namespace: &str,
) -> RedisResult<Vec<Member>> {
    let mut nodes: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.nodes())
        .query_async(&mut connection)
        .await?;
    nodes.retain(|n| n != keys.node());
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut alive = redis::pipe();
    for node in &nodes {
        alive.exists(keys.alive(node));
    }
    let alive: Vec<bool> = alive.query_async(&mut connection).await?;
    let live: Vec<&String> = nodes
        .iter()
        .zip(alive)
        .filter_map(|(node, alive)| alive.then_some(node))
        .collect();
    if live.is_empty() {
        return Ok(Vec::new());
    }
    let mut hashes = redis::pipe();
    for node in &live {
        hashes.hgetall(keys.presence(node));
    }
    let hashes: Vec<HashMap<String, Vec<u8>>> = hashes.query_async(&mut connection).await?;
    let prefix = field(namespace, "");
    Ok(hashes
        .into_iter()
        .flatten()
        .filter(|(field, _)| field.starts_with(&prefix))
        .filter_map(|(_, value)| rmp_serde::from_slice(&value).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_fields_keep_namespaces_apart() {
        let member = Member {
            sid: "n1-3".into(),
            user: Some("alice".into()),
            client: None,
            transport: "native".into(),
            rooms: vec!["lobby".into()],
            node: "n1".into(),
        };
        let decoded: Member = rmp_serde::from_slice(&encode(&member)).expect("decodes");
        assert_eq!(decoded, member);
        assert!(!field("/a/b", "x").starts_with(&field("/a", "")));
    }
}
