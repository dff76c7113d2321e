//! In-memory vector index: every stored passage vector, normalised once, in one contiguous
//! `Vec<f32>`, so a query is a single pass over memory (cosine = dot product).
//!
//! Loaded lazily from the `vectors` table on the first semantic query and kept in step
//! by every write that touches vectors while the write lock is held (see `store.rs`).

use std::collections::HashMap;

use rusqlite::Connection;
use storage_core::{normalized, Result};

use crate::error::map_sqlite;

/// Below this many vectors a scan is faster on one thread than the cost of spawning more.
const PARALLEL_MIN_VECTORS: usize = 20_000;

#[derive(Debug, Default)]
pub(crate) struct VectorIndex {
    dim: usize,
    data: Vec<f32>,
    /// Entry row id and passage number of each slot.
    owners: Vec<(i64, u32)>,
    slot_of: HashMap<(i64, u32), usize>,
    /// Passages per entry, so replacing or removing an entry finds all its slots.
    passages_of: HashMap<i64, u32>,
}

pub(crate) fn encode(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn decode(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl VectorIndex {
    pub(crate) fn load(conn: &Connection, dim: usize) -> Result<Self> {
        let mut idx = VectorIndex {
            dim,
            ..Default::default()
        };
        let mut stmt = conn
            .prepare("SELECT entry, passage, vector FROM vectors ORDER BY entry, passage")
            .map_err(map_sqlite)?;
        let mut rows = stmt.query([]).map_err(map_sqlite)?;
        while let Some(r) = rows.next().map_err(map_sqlite)? {
            let rowid: i64 = r.get(0).map_err(map_sqlite)?;
            let passage: u32 = r.get(1).map_err(map_sqlite)?;
            let blob: Vec<u8> = r.get(2).map_err(map_sqlite)?;
            let v = decode(&blob);
            if v.len() == dim {
                idx.insert(rowid, passage, &v);
            }
        }
        Ok(idx)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether some entry has more than one passage.
    #[cfg(test)]
    pub(crate) fn has_multi_passage_entries(&self) -> bool {
        self.owners.len() > self.passages_of.len()
    }

    fn insert(&mut self, rowid: i64, passage: u32, v: &[f32]) {
        let v = normalized(v);
        match self.slot_of.get(&(rowid, passage)) {
            Some(&slot) => self.data[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(&v),
            None => {
                self.slot_of.insert((rowid, passage), self.owners.len());
                self.owners.push((rowid, passage));
                self.data.extend_from_slice(&v);
                let n = self.passages_of.entry(rowid).or_default();
                *n = (*n).max(passage + 1);
            }
        }
    }

    /// Replaces all passages of an entry.
    pub(crate) fn replace(&mut self, rowid: i64, vectors: &[&[f32]]) {
        self.remove(rowid);
        for (i, v) in vectors.iter().enumerate() {
            self.insert(rowid, i as u32, v);
        }
    }

    /// Removes all passages of an entry.
    pub(crate) fn remove(&mut self, rowid: i64) {
        let Some(n) = self.passages_of.remove(&rowid) else {
            return;
        };
        for passage in 0..n {
            let Some(slot) = self.slot_of.remove(&(rowid, passage)) else {
                continue;
            };
            let last = self.owners.len() - 1;
            if slot != last {
                let moved = self.owners[last];
                self.owners[slot] = moved;
                self.slot_of.insert(moved, slot);
                let (head, tail) = self.data.split_at_mut(last * self.dim);
                head[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(&tail[..self.dim]);
            }
            self.owners.pop();
            self.data.truncate(last * self.dim);
        }
    }

    /// Cosine similarity of `query` (already normalised) with every stored passage vector,
    /// with the passage's owner. Large indexes are scanned on all cores: each thread takes
    /// a contiguous slice.
    pub(crate) fn scores(&self, query: &[f32]) -> Vec<(f32, (i64, u32))> {
        let n = self.owners.len();
        let mut out = vec![(0f32, (0i64, 0u32)); n];
        let threads = std::thread::available_parallelism()
            .map_or(1, |t| t.get())
            .min(8);
        let per = if n >= PARALLEL_MIN_VECTORS && threads > 1 {
            n.div_ceil(threads)
        } else {
            n.max(1)
        };
        std::thread::scope(|scope| {
            for (i, chunk) in out.chunks_mut(per).enumerate() {
                let start = i * per;
                let data = &self.data[start * self.dim..(start + chunk.len()) * self.dim];
                let owners = &self.owners[start..start + chunk.len()];
                let mut work = move || {
                    for ((slot, v), &r) in chunk
                        .iter_mut()
                        .zip(data.chunks_exact(self.dim))
                        .zip(owners)
                    {
                        *slot = (dot(v, query), r);
                    }
                };
                if per == n.max(1) {
                    work();
                } else {
                    scope.spawn(work);
                }
            }
        });
        out
    }

    /// Score of one stored vector, if present.
    #[cfg(test)]
    pub(crate) fn score_of(&self, rowid: i64, query: &[f32]) -> Option<f32> {
        self.slot_of
            .get(&(rowid, 0))
            .map(|&s| dot(&self.data[s * self.dim..(s + 1) * self.dim], query))
    }
}

/// Dot product in 8 independent lanes so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_keeps_other_slots_intact() {
        let mut idx = VectorIndex {
            dim: 2,
            ..Default::default()
        };
        idx.replace(1, &[&[1.0, 0.0], &[0.5, 0.5]]);
        idx.replace(2, &[&[0.0, 1.0]]);
        idx.replace(3, &[&[1.0, 1.0]]);
        assert!(idx.has_multi_passage_entries());
        idx.remove(1);
        assert_eq!(idx.len(), 2);
        assert!(!idx.has_multi_passage_entries());
        assert!((idx.score_of(3, &[1.0, 0.0]).unwrap() - 0.70710677).abs() < 1e-6);
        assert!((idx.score_of(2, &[0.0, 1.0]).unwrap() - 1.0).abs() < 1e-6);
        assert!(idx.score_of(1, &[1.0, 0.0]).is_none());
    }
}
