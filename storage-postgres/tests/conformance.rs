//! Runs the whole shared conformance suite against Postgres, one random schema per case
//! (dropped afterwards). Needs `KB_PG_URL` (or `DATABASE_URL`); `cargo xtask
//! test-postgres` provisions a server and sets it.

#![allow(clippy::unwrap_used)] // The suite is test code: a failed unwrap is a failed case, with its location.

use std::sync::Arc;

use storage_core::Store;
use storage_postgres::PgStore;

::conformance::conformance_tests!({
    let url = storage_postgres::require_test_url();
    let store = PgStore::open_for_test(&url)
        .await
        .unwrap_or_else(|e| panic!("could not open a Postgres test store: {e}"));
    Arc::new(store) as Arc<dyn Store>
});
