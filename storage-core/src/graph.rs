//! Breadth-first assembly of a [`Graph`], shared by every backend so the rules (KB filter,
//! node limit, key order at the cut, which edges are kept) are written once. A backend
//! only fetches: the links touching each frontier, and the titles of the new nodes.

use std::collections::{HashMap, HashSet};

use crate::types::{EntryKey, Graph, GraphEdge, GraphNode, GraphQuery};

/// A link as fetched for the walk: (source, target, relation).
pub type RawEdge = (EntryKey, EntryKey, String);

/// Drives one neighbourhood query:
///
/// ```text
/// let mut b = GraphBuilder::new(&query, start_title);
/// while !b.frontier().is_empty() {
///     let new = b.add_level(edges_touching(b.frontier()));
///     b.set_titles(titles_of(&new));
/// }
/// b.finish()
/// ```
#[derive(Debug)]
pub struct GraphBuilder<'q> {
    query: &'q GraphQuery,
    graph: Graph,
    seen: HashMap<EntryKey, u32>,
    edges: HashSet<RawEdge>,
    frontier: Vec<EntryKey>,
    depth: u32,
}

impl<'q> GraphBuilder<'q> {
    /// Starts at `query.start`, which the caller has found to exist with `start_title`.
    pub fn new(query: &'q GraphQuery, start_title: String) -> Self {
        let mut seen = HashMap::new();
        seen.insert(query.start.clone(), 0);
        let graph = Graph {
            nodes: vec![GraphNode {
                key: query.start.clone(),
                title: Some(start_title),
                depth: 0,
            }],
            ..Graph::default()
        };
        Self {
            query,
            graph,
            seen,
            edges: HashSet::new(),
            frontier: vec![query.start.clone()],
            depth: 0,
        }
    }

    /// Nodes whose links the backend fetches next: outgoing ones, and incoming ones when
    /// `query.include_backlinks`. Empty when the walk is over.
    pub fn frontier(&self) -> &[EntryKey] {
        if self.depth >= self.query.depth {
            &[]
        } else {
            &self.frontier
        }
    }

    /// Takes the links touching the frontier and admits the next level: unseen nodes in the
    /// allowed KBs, in key order, until the node limit (then `truncated` is set). Returns
    /// the admitted nodes; pass their titles, in the same order, to [`Self::set_titles`].
    pub fn add_level(&mut self, level_edges: Vec<RawEdge>) -> Vec<EntryKey> {
        self.depth += 1;
        let allowed = |k: &EntryKey| self.query.kbs.is_empty() || self.query.kbs.contains(&k.kb);
        let mut candidates: Vec<EntryKey> = level_edges
            .iter()
            .flat_map(|(s, t, _)| [s, t])
            .filter(|k| !self.seen.contains_key(*k) && allowed(k))
            .cloned()
            .collect();
        candidates.sort();
        candidates.dedup();
        let max_nodes = self.query.max_nodes.max(1);
        let mut admitted = Vec::new();
        for k in candidates {
            if self.seen.len() >= max_nodes {
                self.graph.truncated = true;
                break;
            }
            self.seen.insert(k.clone(), self.depth);
            self.graph.nodes.push(GraphNode {
                key: k.clone(),
                title: None,
                depth: self.depth,
            });
            admitted.push(k);
        }
        self.edges.extend(level_edges);
        self.frontier = admitted.clone();
        admitted
    }

    /// Titles of the nodes the last [`Self::add_level`] returned (`None`: the node is a
    /// link target that does not exist).
    pub fn set_titles(&mut self, titles: Vec<Option<String>>) {
        let n = self.graph.nodes.len();
        let start = n.saturating_sub(titles.len());
        for (node, title) in self.graph.nodes[start..].iter_mut().zip(titles) {
            node.title = title;
        }
    }

    /// The graph: nodes in BFS order, edges between returned nodes sorted by
    /// (source, target, relation).
    pub fn finish(mut self) -> Graph {
        let mut edges: Vec<GraphEdge> = self
            .edges
            .into_iter()
            .filter(|(s, t, _)| self.seen.contains_key(s) && self.seen.contains_key(t))
            .map(|(source, target, relation)| GraphEdge {
                source,
                target,
                relation,
            })
            .collect();
        edges.sort_by(|a, b| {
            (&a.source, &a.target, &a.relation).cmp(&(&b.source, &b.target, &b.relation))
        });
        self.graph.edges = edges;
        self.graph
    }
}
