//! A `(namespace, name)` map key that can be looked up with two borrowed
//! `&str`s: one hash probe, no allocation per lookup.
//!
//! The key type borrows as `dyn KeyPair`, which both the owned key and a
//! pair of string slices implement with the same `Hash` and `Eq`.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// Anything that is a (namespace, name) pair.
pub(crate) trait KeyPair {
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
}

impl Hash for dyn KeyPair + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.namespace().hash(state);
        self.name().hash(state);
    }
}

impl PartialEq for dyn KeyPair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.namespace() == other.namespace() && self.name() == other.name()
    }
}

impl Eq for dyn KeyPair + '_ {}

/// The owned key stored in the maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelKey {
    namespace: Box<str>,
    name: Box<str>,
}

impl ChannelKey {
    pub(crate) fn new(namespace: &str, name: &str) -> ChannelKey {
        ChannelKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl Hash for ChannelKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyPair).hash(state);
    }
}

impl KeyPair for ChannelKey {
    fn namespace(&self) -> &str {
        &self.namespace
    }
    fn name(&self) -> &str {
        &self.name
    }
}

impl KeyPair for (&str, &str) {
    fn namespace(&self) -> &str {
        self.0
    }
    fn name(&self) -> &str {
        self.1
    }
}

impl<'a> Borrow<dyn KeyPair + 'a> for ChannelKey {
    fn borrow(&self) -> &(dyn KeyPair + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn borrowed_lookup_finds_owned_key() {
        let mut map = HashMap::new();
        map.insert(ChannelKey::new("/orders", "order.created"), 1);
        assert_eq!(
            map.get(&("/orders", "order.created") as &dyn KeyPair),
            Some(&1)
        );
        assert_eq!(map.get(&("/orders", "order.updated") as &dyn KeyPair), None);
        // The split point matters: ("/a", "bc") is not ("/ab", "c").
        map.insert(ChannelKey::new("/a", "bc"), 2);
        assert_eq!(map.get(&("/ab", "c") as &dyn KeyPair), None);
    }
}
