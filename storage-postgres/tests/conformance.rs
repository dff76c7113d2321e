//! Runs the whole shared conformance suite against Postgres, one random schema per case
//! (dropped afterwards). Needs `KB_TEST_PG_URL` (or `DATABASE_URL`); `cargo xtask
//! test-postgres` provisions a server and sets it.

use std::sync::Arc;

use storage_core::Store;
use storage_postgres::PgStore;

fn test_url() -> String {
    std::env::var("KB_TEST_PG_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .expect(
            "set KB_TEST_PG_URL (or run `cargo xtask test-postgres`, which provisions a server)",
        )
}

::conformance::conformance_tests!({
    let url = test_url();
    let store = PgStore::open_for_test(&url)
        .await
        .unwrap_or_else(|e| panic!("could not open a Postgres test store: {e}"));
    Arc::new(store) as Arc<dyn Store>
});
