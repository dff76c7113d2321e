//! Tags, links, graph walks and the timeline.

use serde::{Deserialize, Serialize};

use super::*;

/// A tag with the number of entries carrying it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TagCount {
    /// The tag.
    pub tag: String,
    /// Number of entries (active and archived) carrying the tag.
    pub count: u64,
}

/// An incoming link, as seen from its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Backlink {
    /// The linking entry.
    pub source: EntryKey,
    /// The link's relation.
    pub relation: String,
    /// The link's note.
    pub note: Option<String>,
}

/// An entry, or a link target that does not exist, in a [`Graph`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphNode {
    /// The node's key.
    pub key: EntryKey,
    /// `None` when the node is a link target that does not exist (yet).
    pub title: Option<String>,
    /// Hops from the start entry (0 for the start).
    pub depth: u32,
}

/// A link between two nodes of a [`Graph`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GraphEdge {
    /// The linking entry.
    pub source: EntryKey,
    /// The linked entry.
    pub target: EntryKey,
    /// The link's relation.
    pub relation: String,
}

/// A neighbourhood of the link graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Graph {
    /// In BFS order: by depth, then by key.
    pub nodes: Vec<GraphNode>,
    /// Edges between returned nodes only, sorted by (source, target, relation).
    pub edges: Vec<GraphEdge>,
    /// True when the node limit cut the neighbourhood short.
    pub truncated: bool,
}

/// Parameters of a graph neighbourhood query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphQuery {
    /// The entry the walk starts from; it must exist.
    pub start: EntryKey,
    /// Maximum hops from the start (0 returns only the start).
    pub depth: u32,
    /// Maximum number of nodes returned, start included.
    pub max_nodes: usize,
    /// When non-empty, only nodes in these KBs are visited.
    pub kbs: Vec<String>,
    /// Follow incoming links too, not only outgoing ones.
    pub include_backlinks: bool,
}

impl GraphQuery {
    /// A walk of up to `depth` hops from `start` over outgoing and incoming links, in every KB, of at most 100 nodes.
    pub fn new(start: EntryKey, depth: u32) -> Self {
        Self {
            start,
            depth,
            max_nodes: 100,
            kbs: Vec::new(),
            include_backlinks: true,
        }
    }
}

/// An entry with its number of incoming links, as [`most_linked`](crate::GraphStore::most_linked) returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkCount {
    /// The linked entry.
    pub key: EntryKey,
    /// Number of distinct entries linking to this one.
    pub count: u64,
}
