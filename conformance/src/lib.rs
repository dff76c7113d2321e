//! The one conformance suite every storage backend runs.
//!
//! Each case is a plain `pub async fn case(store) -> Result<()>` in [`cases`], with a one-line
//! doc saying what it promises. [`conformance_tests!`] expands, for a given expression
//! that builds a fresh, isolated store, into one `#[tokio::test]` per case inside a module
//! named `conformance`, so `cargo test -p storage-sqlite conformance::` runs them all and no
//! backend can skip one. A behaviour that is not in this suite is not promised.
//!
//! The suite writes and deletes data: always give it a throwaway store (a temporary
//! SQLite file, a random Postgres schema).
//!
//! Backend differences are declared as capabilities, never as early returns inside a case.
//! Today there are none: every case holds on every backend.

#![allow(clippy::unwrap_used)] // The suite is test code: a failed unwrap is a failed case, with its location.

pub mod cases;
pub mod concurrency;
pub mod fixtures;

pub use storage_core::{Result, Store};

/// Expands into `mod conformance { … }` with one `#[tokio::test]` per case.
///
/// `$make` is an expression (it may use `.await`) evaluating to an `Arc<dyn Store>` that is
/// fresh and isolated; it is evaluated once per case, in the caller's scope.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;

            async fn __fresh_store() -> ::std::sync::Arc<dyn $crate::Store> {
                $make
            }

            $crate::__kb_cases!();
            $crate::__expiry_cases!();
            $crate::__entries_cases!();
            $crate::__filters_cases!();
            $crate::__tags_cases!();
            $crate::__graph_cases!();
            $crate::__timeline_cases!();
            $crate::__search_cases!();
            $crate::__scripts_cases!();
            $crate::__vectors_cases!();
            $crate::__passages_cases!();
            $crate::__queue_cases!();
            $crate::__organise_cases!();
            $crate::__coordination_cases!();
            $crate::__health_cases!();
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($($area:ident { $($case:ident,)* })*) => {
        $(
            mod $area {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        let store = super::__fresh_store().await;
                        $crate::cases::$area::run::$case(store)
                            .await
                            .expect(concat!("conformance case ", stringify!($area), "::", stringify!($case), " failed"));
                    }
                )*
            }
        )*
    };
}
