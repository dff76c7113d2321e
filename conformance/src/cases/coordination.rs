//! Atomic claims and metadata compare-and-set.

use serde_json::json;
use storage_core::*;

use crate::fixtures::*;

crate::area! {
    coordination, __coordination_cases:
    claim_from_expected_status_succeeds,
    claim_from_other_status_reports_current,
    claim_from_no_status,
    claim_of_missing_entry_is_not_found,
    claim_race_has_exactly_one_winner,
    claim_keeps_content_and_hash,
    cas_swaps_on_expected_value,
    cas_mismatch_reports_current_value,
    cas_missing_entry_and_bad_path,
    concurrent_cas_increments_lose_nothing,
    claim_rejects_an_assignee_an_upsert_would_reject,
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("t", id)
}

async fn task(s: &S, status: Option<&str>) -> Result<()> {
    kb(s, "t").await?;
    let mut e = note("t", "task", "Do it", "").entry_type("task");
    if let Some(st) = status {
        e = e.status(st);
    }
    put(s, e).await.map(|_| ())
}

/// A claim from the expected status sets the new status and assignee.
async fn claim_from_expected_status_succeeds(s: S) -> Result<()> {
    task(&s, Some("open")).await?;
    match s
        .claim(&key("task"), Some("open"), "in_progress", "ana")
        .await?
    {
        ClaimOutcome::Claimed(e) => {
            assert_eq!(e.status.as_deref(), Some("in_progress"));
            assert_eq!(e.assignee.as_deref(), Some("ana"));
        }
        other => panic!("{other:?}"),
    }
    let e = s.get_entry(&key("task")).await?.unwrap();
    assert_eq!(
        (e.status.as_deref(), e.assignee.as_deref()),
        (Some("in_progress"), Some("ana"))
    );
    Ok(())
}

/// A claim from another status reports the current status and assignee and changes nothing.
async fn claim_from_other_status_reports_current(s: S) -> Result<()> {
    task(&s, Some("open")).await?;
    s.claim(&key("task"), Some("open"), "in_progress", "ana")
        .await?;
    let out = s
        .claim(&key("task"), Some("open"), "in_progress", "bo")
        .await?;
    assert_eq!(
        out,
        ClaimOutcome::NotInExpectedState {
            current_status: Some("in_progress".into()),
            assignee: Some("ana".into())
        }
    );
    assert_eq!(
        s.get_entry(&key("task"))
            .await?
            .unwrap()
            .assignee
            .as_deref(),
        Some("ana")
    );
    Ok(())
}

/// Expecting "no status" matches an entry without one.
async fn claim_from_no_status(s: S) -> Result<()> {
    task(&s, None).await?;
    assert!(matches!(
        s.claim(&key("task"), Some("open"), "x", "a").await?,
        ClaimOutcome::NotInExpectedState {
            current_status: None,
            ..
        }
    ));
    assert!(matches!(
        s.claim(&key("task"), None, "open", "a").await?,
        ClaimOutcome::Claimed(_)
    ));
    Ok(())
}

/// Claiming a missing entry reports `NotFound` as an outcome.
async fn claim_of_missing_entry_is_not_found(s: S) -> Result<()> {
    kb(&s, "t").await?;
    assert_eq!(
        s.claim(&key("nope"), Some("open"), "x", "a").await?,
        ClaimOutcome::NotFound
    );
    Ok(())
}

/// 32 concurrent claims of one entry: exactly one wins, the rest see the winner.
async fn claim_race_has_exactly_one_winner(s: S) -> Result<()> {
    task(&s, Some("open")).await?;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.claim(
                &key("task"),
                Some("open"),
                "in_progress",
                &format!("worker-{i}"),
            )
            .await
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for t in tasks {
        match t.await.expect("task")? {
            ClaimOutcome::Claimed(e) => winners.push(e.assignee.unwrap()),
            ClaimOutcome::NotInExpectedState {
                current_status,
                assignee,
            } => {
                assert_eq!(current_status.as_deref(), Some("in_progress"));
                losers.push(assignee.unwrap());
            }
            ClaimOutcome::NotFound => panic!("entry vanished"),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(losers.len(), 31);
    assert!(losers.iter().all(|l| *l == winners[0]));
    assert_eq!(
        s.get_entry(&key("task")).await?.unwrap().assignee,
        Some(winners[0].clone())
    );
    Ok(())
}

/// A claim keeps the content hash (status and assignee are workflow state, not content).
async fn claim_keeps_content_and_hash(s: S) -> Result<()> {
    task(&s, Some("open")).await?;
    let before = s.get_entry(&key("task")).await?.unwrap();
    s.claim(&key("task"), Some("open"), "done", "ana").await?;
    let after = s.get_entry(&key("task")).await?.unwrap();
    assert_eq!(after.title, before.title);
    assert_eq!(after.content_hash, before.content_hash);
    assert!(after.updated_at >= before.updated_at);
    Ok(())
}

/// CAS swaps when the current value equals the expected one, creating nested paths.
async fn cas_swaps_on_expected_value(s: S) -> Result<()> {
    task(&s, None).await?;
    assert_eq!(
        s.cas_metadata(&key("task"), "lock.owner", None, &json!("ana"))
            .await?,
        CasOutcome::Swapped
    );
    assert_eq!(
        s.cas_metadata(
            &key("task"),
            "lock.owner",
            Some(&json!("ana")),
            &json!("bo")
        )
        .await?,
        CasOutcome::Swapped
    );
    let e = s.get_entry(&key("task")).await?.unwrap();
    assert_eq!(e.metadata["lock"], json!({"owner": "bo"}));
    assert_eq!(
        s.count_entries(&Filter::new().metadata_eq("lock.owner", json!("bo")))
            .await?,
        1
    );
    Ok(())
}

/// CAS with a wrong expectation reports the current value and changes nothing.
async fn cas_mismatch_reports_current_value(s: S) -> Result<()> {
    task(&s, None).await?;
    s.cas_metadata(&key("task"), "v", None, &json!(1)).await?;
    assert_eq!(
        s.cas_metadata(&key("task"), "v", Some(&json!(2)), &json!(3))
            .await?,
        CasOutcome::Mismatch {
            current: Some(json!(1))
        }
    );
    assert_eq!(
        s.cas_metadata(&key("task"), "v", None, &json!(3)).await?,
        CasOutcome::Mismatch {
            current: Some(json!(1))
        }
    );
    assert_eq!(
        s.cas_metadata(&key("task"), "w", Some(&json!(1)), &json!(3))
            .await?,
        CasOutcome::Mismatch { current: None }
    );
    assert_eq!(
        s.get_entry(&key("task")).await?.unwrap().metadata["v"],
        json!(1)
    );
    Ok(())
}

/// CAS on a missing entry is `NotFound`; a bad path is `InvalidInput`.
async fn cas_missing_entry_and_bad_path(s: S) -> Result<()> {
    task(&s, None).await?;
    assert_eq!(
        s.cas_metadata(&key("nope"), "v", None, &json!(1)).await?,
        CasOutcome::NotFound
    );
    assert!(matches!(
        s.cas_metadata(&key("task"), "a..b", None, &json!(1)).await,
        Err(StorageError::InvalidInput { .. })
    ));
    Ok(())
}

/// Concurrent CAS increments never lose an update.
async fn concurrent_cas_increments_lose_nothing(s: S) -> Result<()> {
    task(&s, None).await?;
    s.cas_metadata(&key("task"), "n", None, &json!(0)).await?;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            while done < 5 {
                let cur = s.get_entry(&key("task")).await?.unwrap().metadata["n"]
                    .as_i64()
                    .unwrap();
                if s.cas_metadata(&key("task"), "n", Some(&json!(cur)), &json!(cur + 1))
                    .await?
                    == CasOutcome::Swapped
                {
                    done += 1;
                }
            }
            Ok::<_, StorageError>(())
        }));
    }
    for t in tasks {
        t.await.expect("task")?;
    }
    assert_eq!(
        s.get_entry(&key("task")).await?.unwrap().metadata["n"],
        json!(40)
    );
    Ok(())
}

/// `claim` rejects a status or assignee that an upsert would reject (too long, control
/// characters), so a claimed entry can always be written back; nothing changes.
async fn claim_rejects_an_assignee_an_upsert_would_reject(s: S) -> Result<()> {
    task(&s, Some("open")).await?;
    let long = "a".repeat(MAX_SHORT_FIELD_BYTES + 1);
    for (status, assignee) in [
        ("in_progress", long.as_str()),
        ("in_progress", "ana\nbo"),
        ("in_progress", "ana\0"),
        (long.as_str(), "ana"),
        ("in\tprogress", "ana"),
        ("", "ana"),
    ] {
        let err = s
            .claim(&key("task"), Some("open"), status, assignee)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidInput { .. }),
            "{status:?} {assignee:?}: {err:?}"
        );
        if !status.is_empty() {
            let again = s.get_entry(&key("task")).await?.unwrap().to_new();
            let err = s
                .upsert_entry(&again.status(status).assignee(assignee))
                .await
                .unwrap_err();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
        }
    }
    let e = s.get_entry(&key("task")).await?.unwrap();
    assert_eq!((e.status.as_deref(), e.assignee), (Some("open"), None));
    Ok(())
}
