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
    stars_keep_starring_order,
    starring_missing_entry_is_not_found,
    collections_keep_order_and_insert_at_position,
    collections_list_and_reject_duplicates,
    collection_errors_are_not_found,
    deleting_an_entry_removes_its_stars_and_memberships,
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
