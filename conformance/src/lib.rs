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
//!
//! [`corpus`] is the seeded benchmark corpus shared by every backend's benches.

pub mod cases;
pub mod corpus;
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

            $crate::__conformance_cases! {
            kb {
                create_then_get_returns_it,
                create_duplicate_is_already_exists,
                get_missing_kb_is_none,
                list_kbs_is_ordered_by_name,
                invalid_kb_name_is_invalid_input,
                delete_kb_removes_its_entries,
                delete_kb_removes_settings_collections_and_stars,
                ephemeral_kb_records_expiry,
                gc_removes_exactly_expired_kbs_and_their_entries,
                gc_respects_the_given_now,
                delete_kb_removes_vectors_from_semantic_search,
            }
            expiry {
                an_expired_entry_is_absent_from_every_read,
                expiry_round_trips_and_a_live_entry_keeps_it,
                expired_entries_leave_graph_walks,
                semantic_search_and_similar_skip_expired_entries_before_top_k,
                coordination_does_not_see_an_expired_entry,
                stars_and_collections_hide_members_once_expired,
                gc_removes_expired_entries_and_a_rewrite_starts_afresh,
            }
            entries {
                upsert_then_get_round_trips_every_field,
                upsert_into_missing_kb_is_not_found,
                reupsert_replaces_tags_links_and_sources,
                reupsert_keeps_created_and_advances_updated,
                empty_and_duplicate_tags_are_dropped,
                get_missing_entry_is_none,
                get_entries_keeps_order_and_skips_missing,
                delete_entry_reports_whether_it_deleted,
                upsert_many_is_all_or_nothing,
                upsert_many_returns_input_order_and_last_duplicate_wins,
                content_hash_tracks_content_only,
                oversized_body_is_invalid_input,
                malformed_ids_are_invalid_input,
                unusual_ids_round_trip,
                same_id_in_two_kbs_is_two_entries,
                entry_types_are_distinct_with_counts,
                metadata_round_trips_nested_json,
                source_paths_are_normalised,
                text_with_a_nul_byte_is_rejected_on_every_backend,
            }
            filters {
                filter_by_kb,
                filter_by_entry_type,
                filter_by_tags_requires_all,
                tag_prefix_respects_hierarchy_boundaries,
                filter_by_status,
                archived_entries_are_excluded_by_default,
                date_range_is_inclusive,
                inverted_date_range_is_invalid_input,
                filter_by_min_importance,
                path_prefix_matches_folders_only,
                metadata_equality_on_json_paths,
                invalid_metadata_path_is_invalid_input,
                combined_conditions_all_apply,
                every_sort_field_and_direction_orders_as_documented,
                undated_entries_sort_last,
                pagination_is_disjoint_and_complete,
                page_limits_are_enforced,
                list_and_count_agree_for_random_filters,
                offsets_beyond_the_maximum_are_invalid_input,
            }
            tags {
                tags_with_counts_across_all_kbs,
                tags_of_one_kb,
                tags_with_prefix_follow_the_hierarchy,
                tag_counts_follow_rewrites_and_deletes,
                tags_are_kept_verbatim,
            }
            graph {
                outlinks_keep_written_order,
                links_to_missing_targets_are_kept,
                backlinks_carry_relation_and_note,
                cross_kb_links_resolve,
                deleting_entries_updates_links,
                neighbourhood_depth_one_and_zero,
                neighbourhood_depth_two_includes_missing_targets,
                neighbourhood_node_limit_truncates,
                neighbourhood_kb_filter,
                neighbourhood_of_missing_entry_is_not_found,
                most_linked_counts_distinct_sources,
                orphans_have_no_links,
                most_linked_with_a_huge_limit_returns_all,
            }
            timeline {
                timeline_orders_by_date_then_key,
                timeline_range_and_importance,
                timeline_pages,
            }
            search {
                single_term_matches_title_and_body,
                terms_are_anded_by_default,
                or_widens,
                not_and_minus_exclude,
                phrase_requires_adjacency,
                prefix_matches_word_starts,
                parentheses_group,
                matching_folds_case_accents_and_word_forms,
                tags_are_searchable,
                title_outweighs_body,
                scores_descend_and_ranks_count_across_pages,
                search_pages_are_disjoint_and_complete,
                snippet_highlights_matches,
                filters_apply_to_search,
                index_follows_rewrites_and_deletes,
                malformed_queries_are_invalid_query,
                engine_syntax_is_plain_text,
                no_match_is_empty,
                terms_match_whole_words,
                slashed_words_search_as_phrase,
                keyword_scores_are_bm25,
                keyword_scores_follow_edits_and_deletes,
                and_scores_sum_each_words_score,
                rare_terms_and_short_entries_rank_higher,
            }
            vectors {
                embedding_space_is_fixed_on_first_use,
                other_model_or_dimension_is_model_mismatch,
                reset_embedding_space_lets_another_model_embed_the_store,
                wrong_dimension_is_dimension_mismatch,
                vector_without_space_is_invalid_input,
                degenerate_vectors_are_invalid_input,
                vector_for_missing_entry_is_not_found,
                vectors_round_trip,
                knn_returns_known_neighbours_in_order,
                knn_is_scale_invariant_and_bounded_by_k,
                min_score_drops_weak_hits,
                filters_apply_before_top_k,
                selective_filter_still_returns_k,
                archived_entries_are_excluded_from_semantic_search,
                replacing_a_vector_moves_the_entry,
                similar_excludes_the_entry_itself,
                deleted_vectors_leave_search,
                coverage_counts_entries_with_and_without_vectors,
                semantic_search_without_vectors_is_empty,
                vector_batches_are_all_or_nothing,
                semantic_search_rejects_a_huge_k,
                vectors_whose_norm_underflows_are_invalid_input,
            }
            passages {
                passages_round_trip_in_order,
                entry_scores_as_its_best_passage,
                many_passages_of_one_entry_do_not_crowd_out_k,
                putting_passages_replaces_earlier_ones,
                bad_passage_batches_store_nothing,
                delete_vector_removes_every_passage,
            }
            queue {
                new_entries_are_queued_in_order,
                only_text_changes_requeue,
                claims_respect_limit_and_leases,
                expired_leases_are_claimable_again,
                completing_with_stale_text_keeps_the_item,
                failures_retry_then_give_up,
                editing_a_failed_entry_requeues_it,
                concurrent_workers_claim_disjoint_batches,
                deleting_an_entry_drops_its_queue_item,
                requeue_covers_missing_vectors_or_all,
                a_huge_lease_is_rejected,
                huge_limits_and_attempt_counts_are_clamped,
            }
            organise {
                settings_scopes_are_separate,
                settings_overwrite_and_delete,
                settings_list_by_key,
                setting_for_missing_kb_is_not_found,
                stars_keep_starring_order,
                starring_missing_entry_is_not_found,
                collections_keep_order_and_insert_at_position,
                collections_list_and_reject_duplicates,
                collection_errors_are_not_found,
                deleting_an_entry_removes_its_stars_and_memberships,
            }
            coordination {
                claim_from_expected_status_succeeds,
                claim_from_other_status_reports_current,
                claim_from_no_status,
                claim_of_missing_entry_is_not_found,
                claim_race_has_exactly_one_winner,
                claim_keeps_content_and_hash,
                cas_swaps_on_expected_value,
                cas_mismatch_reports_current_value,
                cas_missing_entry_and_bad_path,
                concurrent_cas_increments_lose_nothing,
                claim_rejects_an_assignee_an_upsert_would_reject,
            }
            health {
                health_reports_counts_and_space,
                error_messages_hide_driver_text,
                only_transient_errors_are_retryable,
                concurrent_writers_and_readers_succeed,
                optimize_changes_no_result,
            }
            }
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
                        $crate::cases::$area::$case(store)
                            .await
                            .expect(concat!("conformance case ", stringify!($area), "::", stringify!($case), " failed"));
                    }
                )*
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every case in `cases/` is listed in the macro, so no backend misses one.
    #[test]
    fn every_case_is_in_the_macro() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cases");
        let lib = include_str!("lib.rs");
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            let src = std::fs::read_to_string(&path).unwrap();
            for line in src.lines() {
                if let Some(rest) = line.strip_prefix("pub async fn ") {
                    if rest.contains("(s: S)") {
                        let name = rest.split('(').next().unwrap();
                        assert!(
                            lib.contains(&format!("                {name},")),
                            "{name} in {path:?} is not in conformance_tests!"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert!(n >= 90, "only {n} cases");
    }
}
