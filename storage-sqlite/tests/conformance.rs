//! Runs the whole shared conformance suite against SQLite, one temporary database per case.

#![allow(clippy::unwrap_used)] // The suite is test code: a failed unwrap is a failed case, with its location.

use std::sync::Arc;

use storage_core::Store;
use storage_sqlite::{SqliteConfig, SqliteStore};

::conformance::conformance_tests!({
    let store = SqliteStore::open(SqliteConfig::temporary())
        .await
        .expect("open a temporary SQLite store");
    Arc::new(store) as Arc<dyn Store>
});
