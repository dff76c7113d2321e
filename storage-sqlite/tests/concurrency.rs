//! The write paths raced against each other on SQLite (`conformance::concurrency`).

use storage_sqlite::{SqliteConfig, SqliteStore};

conformance::concurrency_tests!(std::sync::Arc::new(
    SqliteStore::open(SqliteConfig::temporary())
        .await
        .expect("open a temporary SQLite store")
));
