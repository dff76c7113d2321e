//! A Postgres restart is invisible to callers: pooled connections that died with the old
//! server are replaced on checkout, so no request fails once the server is back.
//!
//! Needs `KB_TEST_PG_RESTART`, a shell command that restarts the test server and waits for
//! it; `cargo xtask test-postgres` sets it for the server it provisions and does not run
//! this test against a server it did not start.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use storage_core::prelude::*;
use storage_core::{Filter, NewKnowledgeBase};
use storage_postgres::{PgConfig, PgStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_after_a_server_restart_succeed() {
    let url = storage_postgres::require_test_url();
    let restart = std::env::var("KB_TEST_PG_RESTART")
        .expect("set KB_TEST_PG_RESTART to a command restarting the test server (xtask does)");
    let mut config = PgConfig::new(url);
    config.pool_min_idle = Some(4);
    let store = PgStore::open_for_test_with(config).await.unwrap();
    store
        .create_kb(&NewKnowledgeBase::persistent("k"))
        .await
        .unwrap();
    // Fill the pool with connections that the restart will kill.
    let f = Filter::new();
    let warm = futures_util::future::join_all((0..4).map(|_| store.count_entries(&f))).await;
    assert!(warm.iter().all(|r| r.is_ok()));

    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(&restart)
        .status()
        .unwrap();
    assert!(status.success(), "restart command failed: {restart}");

    for i in 0..8 {
        let r = store.count_entries(&f).await;
        assert!(r.is_ok(), "request {i} after the restart failed: {r:?}");
    }
    assert!(store.get_kb("k").await.unwrap().is_some());
}
