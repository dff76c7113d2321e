//! The write paths raced against each other on Postgres (`conformance::concurrency`), one
//! random schema per scenario. Needs `KB_PG_URL`, as the conformance suite does.

use std::sync::Arc;

use storage_core::Store;
use storage_postgres::PgStore;

conformance::concurrency_tests!({
    let url = storage_postgres::require_test_url();
    let store = PgStore::open_for_test(&url)
        .await
        .unwrap_or_else(|e| panic!("could not open a Postgres test store: {e}"));
    Arc::new(store) as Arc<dyn Store>
});
