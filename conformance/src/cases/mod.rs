//! The cases, one module per area of the protocol. Each module starts with its list of
//! cases ([`area!`](crate::area)): the list is what every backend runs, and a case left
//! out of it is dead code, which the build rejects (`-D warnings`).

/// Declares an area's cases: `area! { kb, __kb_cases: case_a, case_b }` makes
/// `run::case_a(store)` callable from the suite's macro, and exports `__kb_cases!()`,
/// which [`conformance_tests!`](crate::conformance_tests) expands into one test per case.
#[doc(hidden)]
#[macro_export]
macro_rules! area {
    ($area:ident, $list:ident: $($case:ident),* $(,)?) => {
        /// The cases as the suite calls them.
        pub mod run {
            $(
                pub async fn $case(s: $crate::fixtures::S) -> $crate::Result<()> {
                    super::$case(s).await
                }
            )*
        }

        #[doc(hidden)]
        #[macro_export]
        macro_rules! $list {
            () => {
                $crate::__conformance_cases! { $area { $($case,)* } }
            };
        }
    };
}

pub mod coordination;
pub mod entries;
pub mod expiry;
pub mod filters;
pub mod graph;
pub mod health;
pub mod kb;
pub mod organise;
pub mod passages;
pub mod queue;
pub mod scripts;
pub mod search;
pub mod tags;
pub mod timeline;
pub mod vectors;
