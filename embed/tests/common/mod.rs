//! Opens a fresh store on each backend for the tests that must hold on both (also used
//! by `search-hybrid`'s tests, through `#[path]`).

use std::sync::Arc;

use storage_core::Store;

pub(crate) async fn sqlite_store() -> Arc<dyn Store> {
    let s = storage_sqlite::SqliteStore::open(storage_sqlite::SqliteConfig::temporary())
        .await
        .expect("open a temporary SQLite store");
    Arc::new(s)
}

#[cfg(feature = "postgres-tests")]
pub(crate) async fn postgres_store() -> Arc<dyn Store> {
    let url = storage_postgres::require_test_url();
    let s = storage_postgres::PgStore::open_for_test(&url)
        .await
        .unwrap_or_else(|e| panic!("could not open a Postgres test store: {e}"));
    Arc::new(s)
}

/// One `#[tokio::test]` per listed `async fn(Arc<dyn Store>)`, under `sqlite::` and, with
/// the `postgres-tests` feature, under `postgres::`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::sqlite_store().await).await
                }
            )*
        }
        #[cfg(feature = "postgres-tests")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::postgres_store().await).await
                }
            )*
        }
    };
}
