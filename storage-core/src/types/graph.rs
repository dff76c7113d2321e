//! Tags, links, graph walks and the timeline.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCount {
    pub tag: String,
    /// Number of entries (active and archived) carrying the tag.
    pub count: u64,
}

/// An incoming link, as seen from its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backlink {
    pub source: EntryKey,
    pub relation: String,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    pub key: EntryKey,
    /// `None` when the node is a link target that does not exist (yet).
    pub title: Option<String>,
    /// Hops from the start entry (0 for the start).
    pub depth: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub source: EntryKey,
    pub target: EntryKey,
    pub relation: String,
}

/// A neighbourhood of the link graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCount {
    pub key: EntryKey,
    /// Number of distinct entries linking to this one.
    pub count: u64,
}
