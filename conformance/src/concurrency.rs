//! The write paths run against each other: each scenario races two or three writers over
//! the same rows for many rounds, then checks the store agrees with itself. Every backend
//! runs them through [`concurrency_tests!`](crate::concurrency_tests) in its own
//! `tests/concurrency.rs` (separate from the conformance suite: they take seconds, not
//! milliseconds).
//!
//! What they promise: a lost race is either absorbed or reported as a retryable error
//! (`is_retryable`, which the scenarios retry as a client would) or as the error that
//! names the race (`NotFound` when the other writer deleted the row first); never a
//! deadlock or another non-retryable error, and never a state no order of the writes
//! could have produced (an index that disagrees with the rows, a star of a deleted
//! entry, a setting a re-created KB inherits).

use std::future::Future;
use std::time::Duration;

use storage_core::*;

use crate::fixtures::*;

/// Rounds each writer runs per scenario.
pub const ROUNDS: usize = 40;

/// Expands into `mod concurrency { … }` with one `#[tokio::test]` per scenario; `$make`
/// builds a fresh, isolated store, as for [`conformance_tests!`](crate::conformance_tests).
#[macro_export]
macro_rules! concurrency_tests {
    ($make:expr) => {
        mod concurrency {
            #[allow(unused_imports)]
            use super::*;

            $crate::__concurrency_cases! { $make;
                batches_in_opposite_key_orders,
                delete_against_upsert,
                star_against_delete,
                collection_add_against_remove,
                setting_against_delete_kb,
                gc_against_writes,
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __concurrency_cases {
    ($make:expr; $($case:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store: ::std::sync::Arc<dyn $crate::Store> = $make;
                $crate::concurrency::$case(store)
                    .await
                    .expect(concat!("concurrency scenario ", stringify!($case), " failed"));
            }
        )*
    };
}

/// Runs `op` until it succeeds or fails with an error that is not retryable; retryable
/// errors (deadlock victims, busy databases) are retried with a short pause, as the
/// protocol tells clients to.
async fn retrying<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match op().await {
            Err(e) if e.is_retryable() && attempt < 100 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)))).await;
            }
            other => return other,
        }
    }
}

/// `Ok` for the outcome a lost race may have: the row the operation needs is gone.
fn gone_is_fine<T>(r: Result<T>) -> Result<()> {
    match r {
        Ok(_) | Err(StorageError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("c", id)
}

/// Ids found by a search in KB `c`, sorted.
async fn searched(s: &S, q: &str) -> Result<Vec<String>> {
    let hits = s.search(q, &Filter::new().kb("c").limit(500)).await?;
    Ok(id_set(hits.iter().map(|h| &h.entry)))
}

/// Ids listed in KB `c`, sorted.
async fn listed(s: &S) -> Result<Vec<String>> {
    Ok(id_set(
        &s.list_entries(&Filter::new().kb("c").limit(500)).await?,
    ))
}

/// Two writers upsert the same twenty keys in opposite orders: no deadlock escapes, and
/// every key ends with one row, found by search once.
pub async fn batches_in_opposite_key_orders(s: S) -> Result<()> {
    kb(&s, "c").await?;
    let ids: Vec<String> = (0..20).map(|i| format!("k{i:02}")).collect();
    let writer = |reverse: bool| {
        let (s, mut ids) = (s.clone(), ids.clone());
        if reverse {
            ids.reverse();
        }
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                let batch: Vec<NewEntry> = ids
                    .iter()
                    .map(|id| note("c", id, &format!("round {round}"), "shared harbour"))
                    .collect();
                retrying(|| s.upsert_entries(&batch)).await?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let (a, b) = (writer(false), writer(true));
    a.await.expect("writer")?;
    b.await.expect("writer")?;
    assert_eq!(listed(&s).await?, ids);
    assert_eq!(searched(&s, "harbour").await?, ids);
    assert_eq!(s.count_entries(&Filter::new().kb("c")).await?, 20);
    Ok(())
}

/// One writer upserts a set of keys while another deletes them: afterwards a key is
/// listed exactly when it can be read, and found by search exactly when it is listed.
pub async fn delete_against_upsert(s: S) -> Result<()> {
    kb(&s, "c").await?;
    let ids: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
    let upserts = {
        let (s, ids) = (s.clone(), ids.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                let batch: Vec<NewEntry> = ids
                    .iter()
                    .map(|id| note("c", id, &format!("lighthouse {round}"), "keeper"))
                    .collect();
                retrying(|| s.upsert_entries(&batch)).await?;
                retrying(|| s.upsert_entry(&batch[round % batch.len()])).await?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let deletes = {
        let (s, ids) = (s.clone(), ids.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for id in ids.iter().skip(round % 2).step_by(2) {
                    let k = key(id);
                    retrying(|| s.delete_entry(&k)).await?;
                }
            }
            Ok::<_, StorageError>(())
        })
    };
    upserts.await.expect("writer")?;
    deletes.await.expect("writer")?;
    let listed = listed(&s).await?;
    let mut readable = Vec::new();
    for id in &ids {
        if s.get_entry(&key(id)).await?.is_some() {
            readable.push(id.clone());
        }
    }
    assert_eq!(listed, readable);
    assert_eq!(searched(&s, "lighthouse").await?, listed);
    assert_eq!(searched(&s, "keeper").await?, listed);
    Ok(())
}

/// Starring an entry while it is deleted and written again: a star is never left on a
/// deleted entry (nor a deadlock escapes), and starring a live entry afterwards works.
pub async fn star_against_delete(s: S) -> Result<()> {
    kb(&s, "c").await?;
    put(&s, note("c", "s", "starred", "body")).await?;
    let stars = {
        let s = s.clone();
        tokio::spawn(async move {
            let k = key("s");
            for _ in 0..ROUNDS * 2 {
                gone_is_fine(retrying(|| s.star(&k)).await)?;
                gone_is_fine(retrying(|| s.unstar(&k)).await)?;
                gone_is_fine(retrying(|| s.star(&k)).await)?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let deletes = {
        let s = s.clone();
        tokio::spawn(async move {
            let (k, entry) = (key("s"), note("c", "s", "starred", "body"));
            for round in 0..ROUNDS {
                retrying(|| s.delete_entry(&k)).await?;
                if round % 2 == 0 {
                    retrying(|| s.upsert_entry(&entry)).await?;
                }
            }
            Ok::<_, StorageError>(())
        })
    };
    stars.await.expect("writer")?;
    deletes.await.expect("writer")?;
    // The deleter's last round deleted the entry: no star may survive it.
    assert!(s.get_entry(&key("s")).await?.is_none());
    assert_eq!(s.starred(Some("c")).await?, Vec::<EntryKey>::new());
    put(&s, note("c", "s", "starred", "body")).await?;
    s.star(&key("s")).await?;
    assert_eq!(s.starred(Some("c")).await?, [key("s")]);
    Ok(())
}

/// Adding members while another writer removes them: afterwards the collection lists
/// each member once, in a consistent order, and removing every member empties it (no
/// removal is lost to a concurrent add of another member).
pub async fn collection_add_against_remove(s: S) -> Result<()> {
    kb(&s, "c").await?;
    let ids: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    for id in &ids {
        put(&s, note("c", id, id, "member")).await?;
    }
    s.create_collection("c", "reading", "").await?;
    let adds = {
        let (s, ids) = (s.clone(), ids.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for id in &ids {
                    let at = (round % 3 == 0).then_some(0);
                    retrying(|| s.add_to_collection("c", "reading", id, at)).await?;
                }
            }
            Ok::<_, StorageError>(())
        })
    };
    let removes = {
        let (s, ids) = (s.clone(), ids.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for id in ids.iter().skip(round % 3) {
                    retrying(|| s.remove_from_collection("c", "reading", id)).await?;
                }
            }
            Ok::<_, StorageError>(())
        })
    };
    adds.await.expect("writer")?;
    removes.await.expect("writer")?;
    let members = s.collection_entries("c", "reading").await?;
    let mut distinct = members.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), members.len(), "a member twice: {members:?}");
    assert!(members.iter().all(|m| ids.contains(m)), "{members:?}");
    for id in &members {
        assert!(s.remove_from_collection("c", "reading", id).await?);
    }
    assert_eq!(
        s.collection_entries("c", "reading").await?,
        Vec::<String>::new()
    );
    Ok(())
}

/// Writing KB settings while the KB is deleted and created again: a KB created after
/// the race starts with no settings (none is orphaned and inherited).
pub async fn setting_against_delete_kb(s: S) -> Result<()> {
    kb(&s, "c").await?;
    let scope = SettingScope::Kb("c".into());
    let sets = {
        let (s, scope) = (s.clone(), scope.clone());
        tokio::spawn(async move {
            for round in 0..ROUNDS * 2 {
                let value = serde_json::json!(round);
                let k = format!("key{}", round % 4);
                gone_is_fine(retrying(|| s.set_setting(&scope, &k, &value)).await)?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let recreate = {
        let s = s.clone();
        tokio::spawn(async move {
            let new = NewKnowledgeBase::persistent("c");
            for _ in 0..ROUNDS {
                retrying(|| s.delete_kb("c")).await?;
                match retrying(|| s.create_kb(&new)).await {
                    Ok(_) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, StorageError>(())
        })
    };
    sets.await.expect("writer")?;
    recreate.await.expect("writer")?;
    s.delete_kb("c").await?;
    kb(&s, "c").await?;
    assert_eq!(s.list_settings(&scope).await?, Vec::new());
    Ok(())
}

/// Garbage collection running while entries that expire and entries that do not are
/// written: every entry that does not expire survives, found by search and counted, and
/// after a last collection no expired entry is left in the index.
pub async fn gc_against_writes(s: S) -> Result<()> {
    kb(&s, "c").await?;
    let writes = {
        let s = s.clone();
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                let batch = [
                    note("c", &format!("keep{round}"), "kept", "durable meadow"),
                    note("c", &format!("gone{round}"), "brief", "fleeting meadow")
                        .ttl(chrono::Duration::milliseconds(2)),
                ];
                retrying(|| s.upsert_entries(&batch)).await?;
            }
            Ok::<_, StorageError>(())
        })
    };
    let gc = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..ROUNDS {
                retrying(|| s.gc_expired(chrono::Utc::now())).await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Ok::<_, StorageError>(())
        })
    };
    writes.await.expect("writer")?;
    gc.await.expect("collector")?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.gc_expired(chrono::Utc::now()).await?;
    let mut kept: Vec<String> = (0..ROUNDS).map(|r| format!("keep{r}")).collect();
    kept.sort();
    assert_eq!(listed(&s).await?, kept);
    assert_eq!(searched(&s, "meadow").await?, kept);
    assert_eq!(searched(&s, "fleeting").await?, Vec::<String>::new());
    assert_eq!(
        s.count_entries(&Filter::new().kb("c")).await?,
        ROUNDS as u64
    );
    Ok(())
}
