//! Without the `postgres-tests` feature the Postgres cases are not compiled; say so once,
//! visibly, instead of letting `cargo test` look like it covered Postgres.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

#[cfg(not(feature = "postgres-tests"))]
#[test]
fn postgres_cases_were_not_run() {
    use std::io::Write;
    // Written straight to stderr so the test harness does not capture it.
    let _ = writeln!(
        std::io::stderr(),
        "note: the Postgres conformance cases were not run; run `cargo xtask test-postgres` \
         (provisions a server) or set KB_PG_URL and pass --features postgres-tests"
    );
}
