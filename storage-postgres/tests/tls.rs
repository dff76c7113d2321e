//! TLS to Postgres with libpq's `sslmode` and `sslrootcert`, against a server whose
//! certificate (for `localhost` only) is signed by a throwaway CA.
//!
//! Needs `KB_TEST_PG_TLS_CA`, the CA's certificate file; `cargo xtask test-postgres` makes
//! the CA, starts its server with TLS on and sets it (and does not run this test against a
//! server it did not start).

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use storage_core::prelude::*;
use storage_core::{Filter, StorageError};
use storage_postgres::{PgConfig, PgStore};
use tokio_postgres::NoTls;

/// The test server's URL with `host` in place of 127.0.0.1 and `params` added.
fn url(host: &str, params: &str) -> String {
    let base = storage_postgres::require_test_url();
    let base = base.replace("127.0.0.1", host);
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}{params}")
}

fn ca() -> String {
    std::env::var("KB_TEST_PG_TLS_CA")
        .expect("set KB_TEST_PG_TLS_CA to the test server's CA file (xtask does)")
}

async fn open(url: String) -> Result<PgStore, StorageError> {
    let mut config = PgConfig::new(url);
    config.pool_min_idle = Some(1);
    PgStore::open_for_test_with(config).await
}

/// Whether every server session named `app` is encrypted (asked over a plain
/// connection), and how many there are.
async fn sessions(app: &str) -> (i64, bool) {
    let (client, conn) = tokio_postgres::connect(&url("127.0.0.1", "sslmode=disable"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_connects_encrypted_with_the_ca() {
    let app = "kb-tls-verify-full";
    let store = open(url(
        "localhost",
        &format!(
            "sslmode=verify-full&sslrootcert={}&application_name={app}",
            ca()
        ),
    ))
    .await
    .expect("verify-full with the server's CA");
    store.count_entries(&Filter::new()).await.unwrap();
    let (n, encrypted) = sessions(app).await;
    assert!(n >= 1 && encrypted, "{n} sessions, encrypted: {encrypted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_without_the_ca_is_refused_with_a_clear_message() {
    let err = open(url("localhost", "sslmode=verify-full&sslrootcert=system"))
        .await
        .expect_err("the public roots do not include the test CA");
    assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("not signed by a CA in sslrootcert"),
        "{err}"
    );
    let err = open(url("localhost", "sslmode=verify-full"))
        .await
        .expect_err("no root certificate at all");
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err:?}");
    assert!(err.to_string().contains("sslrootcert=PATH"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_name_and_verify_ca_does_not() {
    // The certificate names localhost only.
    let by_ip = |mode: &str| url("127.0.0.1", &format!("sslmode={mode}&sslrootcert={}", ca()));
    let err = open(by_ip("verify-full"))
        .await
        .expect_err("127.0.0.1 is not in the certificate");
    assert!(err.to_string().contains("not issued for the host"), "{err}");
    open(by_ip("verify-ca"))
        .await
        .expect("verify-ca checks the CA only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_encrypts_and_disable_does_not() {
    let app = "kb-tls-require";
    let store = open(url(
        "127.0.0.1",
        &format!("sslmode=require&application_name={app}"),
    ))
    .await
    .expect("require without a root certificate: encrypted, not verified");
    store.count_entries(&Filter::new()).await.unwrap();
    assert!(sessions(app).await.1, "require encrypts");
    let app = "kb-tls-disable";
    let store = open(url(
        "127.0.0.1",
        &format!("sslmode=disable&application_name={app}"),
    ))
    .await
    .unwrap();
    store.count_entries(&Filter::new()).await.unwrap();
    let (n, encrypted) = sessions(app).await;
    assert!(n >= 1 && !encrypted, "{n} sessions, encrypted: {encrypted}");
}
