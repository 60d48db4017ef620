//! RFC 4976 relays: the client side (AUTH, Use-Path) and a relay server.

pub mod client;
pub mod server;
