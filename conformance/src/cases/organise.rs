//! Settings, starred entries and collections.

use serde_json::json;
use storage_core::*;

use crate::fixtures::*;

crate::area! {
    organise, __organise_cases:
    settings_scopes_are_separate,
    settings_overwrite_and_delete,
    settings_list_by_key,
    setting_for_missing_kb_is_not_found,
    settings_racing_the_deletion_of_their_kb_do_not_outlive_it,
    stars_keep_starring_order,
    starring_missing_entry_is_not_found,
    collections_keep_order_and_insert_at_position,
    collections_list_and_reject_duplicates,
    collection_errors_are_not_found,
    descriptions_with_nul_or_too_long_are_invalid_input,
    deleting_an_entry_removes_its_stars_and_memberships,
    stars_racing_the_deletion_of_their_entry_are_applied_or_not_found,
    a_removal_racing_an_addition_to_the_same_collection_is_not_lost,
}

fn key(id: &str) -> EntryKey {
    EntryKey::new("k", id)
}

async fn some(s: &S) -> Result<()> {
    kb(s, "k").await?;
    for id in ["1", "2", "3", "4"] {
        put(s, note("k", id, id, "")).await?;
    }
    Ok(())
}

/// A `set_setting` racing `delete_kb` either lands before the deletion (and goes with
/// the KB) or is `NotFound`: a KB re-created under the same name starts with no settings.
async fn settings_racing_the_deletion_of_their_kb_do_not_outlive_it(s: S) -> Result<()> {
    for round in 0..6 {
        let name = format!("doomed{round}");
        let scope = SettingScope::Kb(name.clone());
        kb(&s, &name).await?;
        let mut writers = Vec::new();
        for w in 0..8 {
            let (s, scope) = (s.clone(), scope.clone());
            writers.push(tokio::spawn(async move {
                for i in 0..10 {
                    match s.set_setting(&scope, &format!("w{w}.{i}"), &json!(i)).await {
                        Ok(()) => {}
                        Err(StorageError::NotFound { .. }) => return,
                        Err(other) => panic!("expected success or NotFound, got {other:?}"),
                    }
                }
            }));
        }
        tokio::task::yield_now().await;
        assert!(s.delete_kb(&name).await?);
        for w in writers {
            w.await.expect("writer");
        }
        kb(&s, &name).await?;
        let inherited = s.list_settings(&scope).await?;
        assert!(
            inherited.is_empty(),
            "a re-created KB inherited {} settings of the deleted one",
            inherited.len()
        );
    }
    Ok(())
}

/// Global and per-KB settings are separate namespaces; values are any JSON.
async fn settings_scopes_are_separate(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let kb_scope = SettingScope::Kb("k".into());
    s.set_setting(&SettingScope::Global, "theme", &json!("dark"))
        .await?;
    s.set_setting(&kb_scope, "theme", &json!({"accent": [1, 2]}))
        .await?;
    assert_eq!(
        s.get_setting(&SettingScope::Global, "theme").await?,
        Some(json!("dark"))
    );
    assert_eq!(
        s.get_setting(&kb_scope, "theme").await?,
        Some(json!({"accent": [1, 2]}))
    );
    assert_eq!(s.get_setting(&SettingScope::Global, "missing").await?, None);
    Ok(())
}

/// Setting a key again overwrites it; deleting reports whether it existed.
async fn settings_overwrite_and_delete(s: S) -> Result<()> {
    s.set_setting(&SettingScope::Global, "n", &json!(1)).await?;
    s.set_setting(&SettingScope::Global, "n", &json!(2)).await?;
    assert_eq!(
        s.get_setting(&SettingScope::Global, "n").await?,
        Some(json!(2))
    );
    assert!(s.delete_setting(&SettingScope::Global, "n").await?);
    assert!(!s.delete_setting(&SettingScope::Global, "n").await?);
    assert_eq!(s.get_setting(&SettingScope::Global, "n").await?, None);
    Ok(())
}

/// Settings of a scope are listed ordered by key.
async fn settings_list_by_key(s: S) -> Result<()> {
    for k in ["b", "a", "c"] {
        s.set_setting(&SettingScope::Global, k, &json!(k)).await?;
    }
    let keys: Vec<String> = s
        .list_settings(&SettingScope::Global)
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["a", "b", "c"]);
    Ok(())
}

/// A setting for a missing KB is `NotFound`.
async fn setting_for_missing_kb_is_not_found(s: S) -> Result<()> {
    let err = s
        .set_setting(&SettingScope::Kb("nope".into()), "x", &json!(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::NotFound { .. }));
    Ok(())
}

/// Stars keep starring order; starring twice keeps the first position.
async fn stars_keep_starring_order(s: S) -> Result<()> {
    some(&s).await?;
    for id in ["3", "1", "2", "3"] {
        s.star(&key(id)).await?;
    }
    assert_eq!(s.starred(None).await?, vec![key("3"), key("1"), key("2")]);
    assert!(s.unstar(&key("1")).await?);
    assert!(!s.unstar(&key("1")).await?);
    s.star(&key("1")).await?;
    assert_eq!(
        s.starred(Some("k")).await?,
        vec![key("3"), key("2"), key("1")]
    );
    assert!(s.starred(Some("other")).await?.is_empty());
    Ok(())
}

/// Starring a missing entry is `NotFound`.
async fn starring_missing_entry_is_not_found(s: S) -> Result<()> {
    some(&s).await?;
    assert!(matches!(
        s.star(&key("nope")).await,
        Err(StorageError::NotFound { .. })
    ));
    Ok(())
}

/// Collections keep member order; inserting at a position shifts the rest.
async fn collections_keep_order_and_insert_at_position(s: S) -> Result<()> {
    some(&s).await?;
    s.create_collection("k", "reading", "to read").await?;
    s.add_to_collection("k", "reading", "1", None).await?;
    s.add_to_collection("k", "reading", "2", None).await?;
    s.add_to_collection("k", "reading", "3", Some(0)).await?;
    s.add_to_collection("k", "reading", "4", Some(2)).await?;
    assert_eq!(
        s.collection_entries("k", "reading").await?,
        ["3", "1", "4", "2"]
    );
    s.add_to_collection("k", "reading", "3", None).await?;
    assert_eq!(
        s.collection_entries("k", "reading").await?,
        ["1", "4", "2", "3"]
    );
    s.add_to_collection("k", "reading", "2", Some(99)).await?;
    assert_eq!(
        s.collection_entries("k", "reading").await?,
        ["1", "4", "3", "2"]
    );
    assert!(s.remove_from_collection("k", "reading", "4").await?);
    assert!(!s.remove_from_collection("k", "reading", "4").await?);
    assert_eq!(s.collection_entries("k", "reading").await?, ["1", "3", "2"]);
    Ok(())
}

/// Collections are listed by name with sizes; duplicates are `AlreadyExists`.
async fn collections_list_and_reject_duplicates(s: S) -> Result<()> {
    some(&s).await?;
    s.create_collection("k", "zeta", "").await?;
    s.create_collection("k", "alpha", "first").await?;
    s.add_to_collection("k", "alpha", "1", None).await?;
    let err = s.create_collection("k", "alpha", "").await.unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }));
    let list = s.list_collections("k").await?;
    assert_eq!(
        list.iter()
            .map(|c| (c.name.as_str(), c.size))
            .collect::<Vec<_>>(),
        [("alpha", 1), ("zeta", 0)]
    );
    assert!(s.delete_collection("k", "zeta").await?);
    assert!(!s.delete_collection("k", "zeta").await?);
    Ok(())
}

/// Missing collections, KBs and entries are `NotFound`.
async fn collection_errors_are_not_found(s: S) -> Result<()> {
    some(&s).await?;
    s.create_collection("k", "c", "").await?;
    assert!(matches!(
        s.collection_entries("k", "nope").await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.add_to_collection("k", "nope", "1", None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.add_to_collection("k", "c", "ghost", None).await,
        Err(StorageError::NotFound { .. })
    ));
    assert!(matches!(
        s.create_collection("nokb", "c", "").await,
        Err(StorageError::NotFound { .. })
    ));
    Ok(())
}

/// Deleting an entry removes it from stars and every collection.
async fn deleting_an_entry_removes_its_stars_and_memberships(s: S) -> Result<()> {
    some(&s).await?;
    s.create_collection("k", "a", "").await?;
    s.create_collection("k", "b", "").await?;
    for c in ["a", "b"] {
        s.add_to_collection("k", c, "1", None).await?;
        s.add_to_collection("k", c, "2", None).await?;
    }
    s.star(&key("1")).await?;
    s.star(&key("2")).await?;
    s.delete_entry(&key("1")).await?;
    assert_eq!(s.collection_entries("k", "a").await?, ["2"]);
    assert_eq!(s.collection_entries("k", "b").await?, ["2"]);
    assert_eq!(s.starred(None).await?, vec![key("2")]);
    put(&s, note("k", "1", "back", "")).await?;
    assert_eq!(s.collection_entries("k", "a").await?, ["2"]);
    Ok(())
}

/// `star` racing `delete_entry` of the same entry either stars it first (and the star
/// goes with the entry) or is `NotFound`: never a deadlock or a star left behind.
async fn stars_racing_the_deletion_of_their_entry_are_applied_or_not_found(s: S) -> Result<()> {
    kb(&s, "k").await?;
    for round in 0..20 {
        let id = format!("e{round}");
        put(&s, note("k", &id, "doomed", "")).await?;
        let (s1, s2, k1, k2) = (s.clone(), s.clone(), key(&id), key(&id));
        let star = tokio::spawn(async move { s1.star(&k1).await });
        let delete = tokio::spawn(async move { s2.delete_entry(&k2).await });
        match star.await.expect("star task") {
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(other) => panic!("expected success or NotFound, got {other:?}"),
        }
        assert!(delete.await.expect("delete task")?, "the entry existed");
    }
    assert_eq!(s.starred(None).await?, Vec::<EntryKey>::new());
    Ok(())
}

/// Removing members while others are being added to the same collection: every removal
/// stays removed, every addition is there.
async fn a_removal_racing_an_addition_to_the_same_collection_is_not_lost(s: S) -> Result<()> {
    kb(&s, "k").await?;
    for round in 0..10 {
        let name = format!("c{round}");
        s.create_collection("k", &name, "").await?;
        let old: Vec<String> = (0..4).map(|i| format!("old{round}-{i}")).collect();
        let new: Vec<String> = (0..4).map(|i| format!("new{round}-{i}")).collect();
        for id in old.iter().chain(&new) {
            put(&s, note("k", id, "member", "")).await?;
        }
        for id in &old {
            s.add_to_collection("k", &name, id, None).await?;
        }
        let mut tasks = Vec::new();
        for (o, n) in old.iter().zip(&new) {
            let (s1, s2) = (s.clone(), s.clone());
            let (c1, c2, o, n) = (name.clone(), name.clone(), o.clone(), n.clone());
            tasks.push(tokio::spawn(async move {
                s1.add_to_collection("k", &c1, &n, None)
                    .await
                    .map(|()| true)
            }));
            tasks.push(tokio::spawn(async move {
                s2.remove_from_collection("k", &c2, &o).await
            }));
        }
        for t in tasks {
            assert!(
                t.await.expect("task")?,
                "round {round}: the member was there"
            );
        }
        let mut members = s.collection_entries("k", &name).await?;
        members.sort();
        assert_eq!(members, new, "round {round}");
    }
    Ok(())
}

/// A collection's or a KB's description with a NUL, or longer than the bound, is
/// `InvalidInput`, and nothing is created.
async fn descriptions_with_nul_or_too_long_are_invalid_input(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let long = "x".repeat(MAX_DESCRIPTION_BYTES + 1);
    for description in ["bad\0byte", long.as_str()] {
        assert!(matches!(
            s.create_collection("k", "c", description).await,
            Err(StorageError::InvalidInput { .. })
        ));
        assert!(matches!(
            s.create_kb(&NewKnowledgeBase::persistent("other").description(description))
                .await,
            Err(StorageError::InvalidInput { .. })
        ));
    }
    assert!(s.list_collections("k").await?.is_empty());
    assert!(s.get_kb("other").await?.is_none());
    s.create_collection("k", "c", &"x".repeat(MAX_DESCRIPTION_BYTES))
        .await?;
    Ok(())
}
