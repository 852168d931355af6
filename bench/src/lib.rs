//! The side-by-side benchmark: Herald against NATS, Redis pub/sub, socketioxide and a floor forwarder.
