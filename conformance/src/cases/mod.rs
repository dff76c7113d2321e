//! The cases, one module per area of the protocol.

pub mod coordination;
pub mod entries;
pub mod expiry;
pub mod filters;
pub mod graph;
pub mod health;
pub mod kb;
pub mod organise;
pub mod passages;
pub mod queue;
pub mod search;
pub mod tags;
pub mod timeline;
pub mod vectors;
