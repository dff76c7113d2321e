//! A store that fails on purpose: every call goes to the real store, except that the
//! next `n` calls of a named method fail with a given error first. For tests of what
//! callers do when the database is away (a restart, SQLite busy) or refuses something.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use storage_core::*;

/// Per method: how many calls are still to fail, and with what.
type Faults = HashMap<&'static str, (u32, fn() -> StorageError)>;

#[derive(Debug)]
pub(crate) struct Faulty {
    inner: Arc<dyn Store>,
    faults: Mutex<Faults>,
}

/// What a database restart looks like to a caller.
pub(crate) fn unavailable() -> StorageError {
    StorageError::Unavailable {
        message: "the database is restarting".into(),
        hint: "wait".into(),
        source: None,
    }
}

impl Faulty {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults: Mutex::default(),
        })
    }

    /// The next `n` calls of `method` fail with `error()`.
    pub(crate) fn fail_next(&self, method: &'static str, n: u32, error: fn() -> StorageError) {
        self.faults.lock().unwrap().insert(method, (n, error));
    }

    /// Calls of `method` still to fail.
    pub(crate) fn pending(&self, method: &'static str) -> u32 {
        self.faults.lock().unwrap().get(method).map_or(0, |f| f.0)
    }

    fn check(&self, method: &'static str) -> Result<()> {
        let mut faults = self.faults.lock().unwrap();
        match faults.get_mut(method) {
            Some((n, error)) if *n > 0 => {
                *n -= 1;
                Err(error())
            }
            _ => Ok(()),
        }
    }
}

/// One area trait, each method checked for a fault and then passed through.
macro_rules! passes_through {
    ($area:ident { $( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $area for Faulty {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret> {
                    self.check(stringify!($name))?;
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

passes_through!(KbStore {
    fn create_kb(&self, kb: &NewKnowledgeBase) -> KnowledgeBase;
    fn get_kb(&self, name: &str) -> Option<KnowledgeBase>;
    fn list_kbs(&self) -> Vec<KnowledgeBase>;
    fn delete_kb(&self, name: &str) -> bool;
    fn gc_expired(&self, now: DateTime<Utc>) -> GcReport;
});

passes_through!(EntryStore {
    fn upsert_entries(&self, entries: &[NewEntry]) -> Vec<Entry>;
    fn get_entry(&self, key: &EntryKey) -> Option<Entry>;
    fn get_entries(&self, keys: &[EntryKey]) -> Vec<Entry>;
    fn delete_entry(&self, key: &EntryKey) -> bool;
    fn list_entries(&self, filter: &Filter) -> Vec<Entry>;
    fn count_entries(&self, filter: &Filter) -> u64;
    fn entry_types(&self, filter: &Filter) -> Vec<(String, u64)>;
    fn timeline(&self, filter: &Filter) -> Vec<Entry>;
});

passes_through!(GraphStore {
    fn outlinks(&self, key: &EntryKey) -> Vec<Link>;
    fn backlinks(&self, key: &EntryKey) -> Vec<Backlink>;
    fn neighbourhood(&self, query: &GraphQuery) -> Graph;
    fn most_linked(&self, kb: Option<&str>, limit: usize) -> Vec<LinkCount>;
    fn orphans(&self, kb: Option<&str>) -> Vec<EntryKey>;
});

passes_through!(SearchStore {
    fn search(&self, query: &str, filter: &Filter) -> Vec<SearchHit>;
    fn search_ranked(&self, query: &str, filter: &Filter) -> Vec<RankedKey>;
    fn snippets(&self, query: &str, keys: &[EntryKey]) -> Vec<Snippet>;
});

passes_through!(VectorStore {
    fn embedding_space(&self) -> Option<EmbeddingSpace>;
    fn ensure_embedding_space(&self, space: &EmbeddingSpace) -> EmbeddingSpace;
    fn reset_embedding_space(&self) -> u64;
    fn put_passages(&self, items: &[EntryPassages]) -> ();
    fn get_passages(&self, key: &EntryKey) -> Vec<StoredPassage>;
    fn get_vector(&self, key: &EntryKey) -> Option<Vec<f32>>;
    fn delete_vector(&self, key: &EntryKey) -> bool;
    fn semantic_search(&self, query: &SemanticQuery) -> Vec<SemanticHit>;
    fn vector_coverage(&self, filter: &Filter) -> VectorCoverage;
});

passes_through!(QueueStore {
    fn claim_embedding_batch(&self, worker: &str, limit: usize, lease: std::time::Duration)
        -> Vec<QueueItem>;
    fn complete_embedding(&self, items: &[QueueItem]) -> u64;
    fn complete_with_passages(&self, done: &[(QueueItem, EntryPassages)]) -> Vec<Completion>;
    fn fail_embedding(&self, item: &QueueItem, error: &str, max_attempts: u32) -> FailOutcome;
    fn queue_stats(&self) -> QueueStats;
    fn failed_embeddings(&self) -> Vec<FailedItem>;
    fn requeue_embeddings(&self, filter: &Filter, all: bool) -> u64;
});

passes_through!(OrganiseStore {
    fn tags(&self, kb: Option<&str>) -> Vec<TagCount>;
    fn tags_with_prefix(&self, kb: Option<&str>, prefix: &str) -> Vec<TagCount>;
    fn get_setting(&self, scope: &SettingScope, key: &str) -> Option<Value>;
    fn set_setting(&self, scope: &SettingScope, key: &str, value: &Value) -> ();
    fn delete_setting(&self, scope: &SettingScope, key: &str) -> bool;
    fn list_settings(&self, scope: &SettingScope) -> Vec<(String, Value)>;
    fn star(&self, key: &EntryKey) -> ();
    fn unstar(&self, key: &EntryKey) -> bool;
    fn starred(&self, kb: Option<&str>) -> Vec<EntryKey>;
    fn create_collection(&self, kb: &str, name: &str, description: &str) -> Collection;
    fn delete_collection(&self, kb: &str, name: &str) -> bool;
    fn list_collections(&self, kb: &str) -> Vec<Collection>;
    fn add_to_collection(&self, kb: &str, name: &str, id: &str, position: Option<usize>) -> ();
    fn remove_from_collection(&self, kb: &str, name: &str, id: &str) -> bool;
    fn collection_entries(&self, kb: &str, name: &str) -> Vec<String>;
});

passes_through!(CoordinationStore {
    fn claim(&self, key: &EntryKey, expected_status: Option<&str>, new_status: &str,
        assignee: &str) -> ClaimOutcome;
    fn cas_metadata(&self, key: &EntryKey, path: &str, expected: Option<&Value>, new: &Value)
        -> CasOutcome;
});

passes_through!(HealthStore {
    fn health(&self) -> HealthReport;
    fn optimize(&self) -> ();
});
