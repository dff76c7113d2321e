//! Full-text search: operators, ranking, snippets, filters, malformed input.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    search, __search_cases:
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
    a_body_of_more_words_than_a_row_index_holds_is_indexed_and_leaves_the_scores_when_deleted,
    ranked_search_is_the_ranking_of_search,
    snippets_of_keys_are_the_snippets_search_gives,
}

/// A single term finds every entry containing it, in title or body.
async fn single_term_matches_title_and_body(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "apple").await?, ["a", "c"]);
    assert_eq!(found(&s, "yogurt").await?, ["c"]);
    Ok(())
}

/// Terms are ANDed by default, and `AND` spells the same.
async fn terms_are_anded_by_default(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "apple banana").await?, ["c"]);
    assert_eq!(found(&s, "apple AND banana").await?, ["c"]);
    assert_eq!(found(&s, "apple cherry").await?, Vec::<String>::new());
    Ok(())
}

/// `OR` widens the result.
async fn or_widens(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "apple OR cherry").await?, ["a", "c", "d"]);
    Ok(())
}

/// `-term` and `NOT term` exclude entries containing the term.
async fn not_and_minus_exclude(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "apple -banana").await?, ["a"]);
    assert_eq!(found(&s, "apple NOT banana").await?, ["a"]);
    assert_eq!(
        found(&s, "cinnamon -walnut -pie").await?,
        Vec::<String>::new()
    );
    Ok(())
}

/// A quoted phrase needs its words adjacent and in order.
async fn phrase_requires_adjacency(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "\"banana bread\"").await?, ["b"]);
    assert_eq!(found(&s, "\"bread banana\"").await?, Vec::<String>::new());
    assert_eq!(found(&s, "\"apple pie\"").await?, ["a"]);
    Ok(())
}

/// `prefix*` matches words starting with the prefix.
async fn prefix_matches_word_starts(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "walnu*").await?, ["b", "e"]);
    assert_eq!(found(&s, "smoo*").await?, ["c"]);
    Ok(())
}

/// Parentheses group operators.
async fn parentheses_group(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert_eq!(found(&s, "(apple OR cherry) -pie").await?, ["c", "d"]);
    assert_eq!(found(&s, "cinnamon (apple OR banana)").await?, ["a", "b"]);
    assert_eq!(found(&s, "cinnamon apple OR cherry").await?, ["a", "d"]);
    Ok(())
}

/// Matching ignores case and diacritics, and word forms meet through stemming.
async fn matching_folds_case_accents_and_word_forms(s: S) -> Result<()> {
    food_corpus(&s).await?;
    put(
        &s,
        note("food", "f", "Crème brûlée", "Caramelised sugar crust."),
    )
    .await?;
    assert_eq!(found(&s, "APPLE").await?, ["a", "c"]);
    assert_eq!(found(&s, "creme brulee").await?, ["f"]);
    assert_eq!(found(&s, "cherry").await?, ["d"]);
    assert_eq!(found(&s, "walnut").await?, ["b", "e"]);
    Ok(())
}

/// Tags are searchable text.
async fn tags_are_searchable(s: S) -> Result<()> {
    kb(&s, "k").await?;
    put(
        &s,
        note("k", "1", "Untitled", "nothing here").tags(["kubernetes"]),
    )
    .await?;
    let hits = s.search("kubernetes", &Filter::new()).await?;
    assert_eq!(hits.len(), 1);
    Ok(())
}

/// A title match outranks the same word in the body.
async fn title_outweighs_body(s: S) -> Result<()> {
    kb(&s, "k").await?;
    put(
        &s,
        note(
            "k",
            "body",
            "Common words here",
            "a zebra appears in this body text once",
        ),
    )
    .await?;
    put(
        &s,
        note(
            "k",
            "title",
            "Zebra",
            "other words appear in this body text once",
        ),
    )
    .await?;
    put(
        &s,
        note(
            "k",
            "summary",
            "Plain",
            "more words appear in this body text once",
        )
        .summary("about a zebra"),
    )
    .await?;
    let hits = s.search("zebra", &Filter::new()).await?;
    let order: Vec<&str> = hits.iter().map(|h| h.entry.id.as_str()).collect();
    assert_eq!(order[0], "title");
    assert_eq!(order.len(), 3);
    Ok(())
}

/// Scores are positive and non-increasing; ranks count from 1 and continue across pages.
async fn scores_descend_and_ranks_count_across_pages(s: S) -> Result<()> {
    food_corpus(&s).await?;
    let all = s
        .search("apple OR banana OR walnut", &Filter::new())
        .await?;
    assert_eq!(all.len(), 4);
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    assert!(all.iter().all(|h| h.score > 0.0 && h.score.is_finite()));
    assert_eq!(all.iter().map(|h| h.rank).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let page = s
        .search(
            "apple OR banana OR walnut",
            &Filter::new().limit(2).offset(2),
        )
        .await?;
    assert_eq!(page.iter().map(|h| h.rank).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(page[0].entry.id, all[2].entry.id);
    Ok(())
}

/// Result pages are disjoint and together equal the full ranking.
async fn search_pages_are_disjoint_and_complete(s: S) -> Result<()> {
    kb(&s, "k").await?;
    let batch: Vec<NewEntry> = (0..23)
        .map(|i| {
            note(
                "k",
                &format!("{i:02}"),
                &format!("lorem {}", "ipsum ".repeat(i % 5)),
                &"dolor ".repeat(i + 1),
            )
        })
        .collect();
    s.upsert_entries(&batch).await?;
    let full: Vec<String> = s
        .search("dolor", &Filter::new())
        .await?
        .into_iter()
        .map(|h| h.entry.id)
        .collect();
    assert_eq!(full.len(), 23);
    let mut paged = Vec::new();
    for p in 0..5 {
        let page = s
            .search("dolor", &Filter::new().limit(5).offset(p * 5))
            .await?;
        paged.extend(page.into_iter().map(|h| h.entry.id));
    }
    assert_eq!(paged, full);
    Ok(())
}

/// The snippet contains the matched word, highlighted.
async fn snippet_highlights_matches(s: S) -> Result<()> {
    food_corpus(&s).await?;
    let hits = s.search("cinnamon", &Filter::new()).await?;
    assert_eq!(hits.len(), 2);
    for h in &hits {
        let marked = h.snippet.highlighted();
        assert!(!marked.is_empty(), "{:?}", h.snippet);
        assert!(
            marked.iter().all(|m| m.to_lowercase() == "cinnamon"),
            "{marked:?}"
        );
        assert!(h.snippet.marked("[", "]").contains("[cinnamon]"));
    }
    Ok(())
}

/// Filters restrict search results exactly as they restrict lists.
async fn filters_apply_to_search(s: S) -> Result<()> {
    food_corpus(&s).await?;
    kb(&s, "other").await?;
    put(
        &s,
        note("other", "x", "Apple crumble", "apple").tags(["dessert"]),
    )
    .await?;
    put(
        &s,
        note("food", "g", "Apple jam", "")
            .tags(["dessert"])
            .lifecycle(Lifecycle::Archived),
    )
    .await?;
    let ids_of = |h: Vec<SearchHit>| {
        let mut v: Vec<String> = h.into_iter().map(|h| h.entry.key().to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(
        ids_of(s.search("apple", &Filter::new()).await?),
        ["food/a", "food/c", "other/x"]
    );
    assert_eq!(
        ids_of(s.search("apple", &Filter::new().tag("dessert")).await?),
        ["other/x"]
    );
    assert_eq!(
        ids_of(
            s.search(
                "apple",
                &Filter::new().kb("food").lifecycle(LifecycleFilter::Any)
            )
            .await?
        ),
        ["food/a", "food/c", "food/g"]
    );
    assert_eq!(
        ids_of(
            s.search("apple", &Filter::new().lifecycle(LifecycleFilter::Archived))
                .await?
        ),
        ["food/g"]
    );
    Ok(())
}

/// Rewritten and deleted entries are found by their new text only.
async fn index_follows_rewrites_and_deletes(s: S) -> Result<()> {
    food_corpus(&s).await?;
    put(&s, note("food", "a", "Pear pie", "Bake the pear pie.")).await?;
    assert_eq!(found(&s, "apple").await?, ["c"]);
    assert_eq!(found(&s, "pear").await?, ["a"]);
    s.delete_entry(&EntryKey::new("food", "c")).await?;
    assert!(found(&s, "apple").await?.is_empty());
    // A status-only change keeps the entry searchable.
    s.claim(&EntryKey::new("food", "a"), None, "doing", "me")
        .await?;
    assert_eq!(found(&s, "pear").await?, ["a"]);
    Ok(())
}

/// Malformed queries are `InvalidQuery` with a position, never an engine error.
async fn malformed_queries_are_invalid_query(s: S) -> Result<()> {
    food_corpus(&s).await?;
    for q in [
        "\"unclosed phrase",
        "(apple",
        "apple)",
        "OR",
        "apple OR",
        "AND apple",
        "*",
        "NOT",
        "-apple",
        "apple \u{1}",
        "",
        "   ",
        "()",
        "\"\"",
    ] {
        match s.search(q, &Filter::new()).await {
            Err(StorageError::InvalidQuery { message, .. }) => assert!(!message.is_empty()),
            other => panic!("{q:?} gave {other:?}"),
        }
    }
    Ok(())
}

/// Engine syntax in user text is treated as plain words, never as engine operators.
async fn engine_syntax_is_plain_text(s: S) -> Result<()> {
    food_corpus(&s).await?;
    for q in [
        "apple:pie",
        "NEAR(apple pie)",
        "title:apple",
        "apple^2",
        "apple & | !",
        "a'b",
        "{apple}",
        "apple;DROP TABLE entries",
        "pie:*",
        "apple <-> pie",
        "\\\"",
        "col : apple",
    ] {
        if let Err(e) = s.search(q, &Filter::new()).await {
            assert!(
                matches!(e, StorageError::InvalidQuery { .. }),
                "{q:?}: {e:?}"
            );
        }
    }
    assert_eq!(found(&s, "title:apple").await?, Vec::<String>::new());
    assert_eq!(found(&s, "apple:pie").await?, ["a"]);
    assert_eq!(
        s.count_entries(&Filter::new().lifecycle(LifecycleFilter::Any))
            .await?,
        5
    );
    Ok(())
}

/// A search with no matches is an empty list, not an error.
async fn no_match_is_empty(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert!(s.search("xylophone", &Filter::new()).await?.is_empty());
    Ok(())
}

/// A term matches whole (stemmed) words only, not substrings.
async fn terms_match_whole_words(s: S) -> Result<()> {
    food_corpus(&s).await?;
    assert!(found(&s, "app").await?.is_empty());
    assert!(found(&s, "nana").await?.is_empty());
    Ok(())
}

/// Slash-separated words (as in hierarchical tags) search as a phrase.
async fn slashed_words_search_as_phrase(s: S) -> Result<()> {
    kb(&s, "k").await?;
    put(&s, note("k", "1", "t", "").tags(["topic/ai"])).await?;
    put(&s, note("k", "2", "ai topic", "")).await?;
    let hits = s.search("topic/ai", &Filter::new()).await?;
    assert_eq!(
        hits.iter().map(|h| h.entry.id.as_str()).collect::<Vec<_>>(),
        ["1"]
    );
    Ok(())
}

/// The BM25 of SQLite's FTS5 (k1 1.2, b 0.75, weights title 2 / tags, summary 1.5 /
/// body 1), computed here by hand for one term.
fn bm25(n: f64, df: f64, f: f64, dl: f64, avgdl: f64) -> f64 {
    let idf = ((n - df + 0.5) / (df + 0.5)).ln().max(1e-6);
    idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * dl / avgdl))
}

/// Six short entries (id, title, body) for hand-computed BM25: titles are one token each,
/// bodies as written. Tokens: 3, 5, 2, 2, 2, 4 → 18.
const FRUIT: [(&str, &str, &str); 6] = [
    ("d1", "one", "apple banana"),
    ("d2", "two", "apple apple cherry date"),
    ("d3", "three", "cherry"),
    ("d4", "four", "fig"),
    ("d5", "five", "grape"),
    ("d6", "apple", "kiwi lime mango"),
];

/// Searches `q` and checks the hits are `want` (id, score), in that order.
async fn assert_scores(s: &S, q: &str, want: &[(&str, f64)]) -> Result<()> {
    let hits = s.search(q, &Filter::new()).await?;
    let got: Vec<(&str, f64)> = hits
        .iter()
        .map(|h| (h.entry.id.as_str(), h.score))
        .collect();
    assert_eq!(got.len(), want.len(), "{q}: {got:?} vs {want:?}");
    for ((gid, gs), (wid, ws)) in got.iter().zip(want) {
        assert_eq!(gid, wid, "{q}: order {got:?} vs {want:?}");
        assert!(
            (gs - ws).abs() < 1e-6 * ws.max(1.0),
            "{q} {gid}: {gs} vs {ws}"
        );
    }
    Ok(())
}

/// Keyword scores are BM25 with the documented parameters, on every backend: the values,
/// not only the order, match a hand computation.
async fn keyword_scores_are_bm25(s: S) -> Result<()> {
    kb(&s, "b").await?;
    for (id, title, body) in FRUIT {
        put(&s, note("b", id, title, body)).await?;
    }
    let (n, avgdl) = (6.0, 18.0 / 6.0);
    // df 3; d6 has it once in the title (weight 2), d2 twice in the body, d1 once.
    let mut want = [
        ("d6", bm25(n, 3.0, 2.0, 4.0, avgdl)),
        ("d2", bm25(n, 3.0, 2.0, 5.0, avgdl)),
        ("d1", bm25(n, 3.0, 1.0, 3.0, avgdl)),
    ];
    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    assert_scores(&s, "apple", &want).await
}

/// The statistics behind the scores follow edits and deletes: after an entry loses a term
/// and another is deleted, one-word, OR and AND queries score with the new N, df and
/// average length.
async fn keyword_scores_follow_edits_and_deletes(s: S) -> Result<()> {
    kb(&s, "b").await?;
    for (id, title, body) in FRUIT {
        put(&s, note("b", id, title, body)).await?;
    }
    // d2 loses "apple" (3 tokens now) and d1 goes: N 5, tokens 3 + 2 + 2 + 2 + 4 = 13,
    // df: apple 1, kiwi 1, cherry 2.
    put(&s, note("b", "d2", "two", "cherry date")).await?;
    assert!(s.delete_entry(&EntryKey::new("b", "d1")).await?);
    let (n, avgdl) = (5.0, 13.0 / 5.0);
    let apple = bm25(n, 1.0, 2.0, 4.0, avgdl);
    let kiwi = bm25(n, 1.0, 1.0, 4.0, avgdl);
    assert_scores(&s, "apple", &[("d6", apple)]).await?;
    assert_scores(
        &s,
        "apple OR cherry",
        &[
            ("d6", apple),
            ("d3", bm25(n, 2.0, 1.0, 2.0, avgdl)),
            ("d2", bm25(n, 2.0, 1.0, 3.0, avgdl)),
        ],
    )
    .await?;
    assert_scores(&s, "apple kiwi", &[("d6", apple + kiwi)]).await
}

/// An AND of words matches the entries having every word and scores each with the sum of
/// the words' one-word scores, whatever the words' frequencies (rare with common, three
/// words of different frequencies: backends may intersect such lists differently).
async fn and_scores_sum_each_words_score(s: S) -> Result<()> {
    kb(&s, "b").await?;
    let fillers = [
        "lorem",
        "ipsum dolor",
        "sit amet elit",
        "sed do eiusmod tempor",
    ];
    let mut entries = Vec::new();
    for i in 0..40 {
        let mut words = vec![fillers[i % 4]];
        if i < 30 {
            words.push("alpha");
        }
        if i < 8 {
            words.push("beta");
        }
        if i == 0 {
            words.push("gamma");
        }
        entries.push(note("b", &format!("e{i:02}"), "t", &words.join(" ")));
    }
    s.upsert_entries(&entries).await?;
    let one_word = |w: &'static str| {
        let s = s.clone();
        async move {
            let hits = s.search(w, &Filter::new().limit(MAX_PAGE_SIZE)).await?;
            Ok::<_, StorageError>(
                hits.into_iter()
                    .map(|h| (h.entry.id, h.score))
                    .collect::<std::collections::HashMap<_, _>>(),
            )
        }
    };
    let (alpha, beta, gamma) = (
        one_word("alpha").await?,
        one_word("beta").await?,
        one_word("gamma").await?,
    );
    for (q, parts) in [
        ("gamma alpha", vec![&gamma, &alpha]),
        ("alpha beta", vec![&alpha, &beta]),
        ("gamma beta alpha", vec![&gamma, &beta, &alpha]),
    ] {
        let hits = s.search(q, &Filter::new().limit(MAX_PAGE_SIZE)).await?;
        let mut want: Vec<(String, f64)> = parts[0]
            .keys()
            .filter(|id| parts.iter().all(|p| p.contains_key(*id)))
            .map(|id| (id.clone(), parts.iter().map(|p| p[id]).sum()))
            .collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let got: Vec<(String, f64)> = hits.into_iter().map(|h| (h.entry.id, h.score)).collect();
        assert_eq!(got.len(), want.len(), "{q}: {got:?} vs {want:?}");
        for ((gid, gs), (wid, ws)) in got.iter().zip(&want) {
            assert_eq!(gid, wid, "{q}: {got:?} vs {want:?}");
            assert!(
                (gs - ws).abs() <= 1e-9 + 1e-6 * ws.abs(),
                "{q} {gid}: {gs} vs {ws}"
            );
        }
    }
    Ok(())
}

/// A rare term weighs more than a common one (idf), and a shorter entry with the same
/// match outranks a longer one (length normalisation).
async fn rare_terms_and_short_entries_rank_higher(s: S) -> Result<()> {
    kb(&s, "b").await?;
    let filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do";
    for i in 0..8 {
        put(&s, note("b", &format!("c{i}"), "common", filler)).await?;
    }
    put(&s, note("b", "rare", "x", "common zebra")).await?;
    put(&s, note("b", "twice", "y", "common common")).await?;
    let hits = s.search("common OR zebra", &Filter::new().limit(3)).await?;
    assert_eq!(hits[0].entry.id, "rare", "{:?}", ids_of(&hits));
    put(&s, note("b", "short", "s", "okapi")).await?;
    put(
        &s,
        note("b", "long", "l", &format!("okapi {filler} {filler}")),
    )
    .await?;
    let hits = s.search("okapi", &Filter::new()).await?;
    assert_eq!(ids_of(&hits), ["short", "long"]);
    Ok(())
}

fn ids_of(h: &[SearchHit]) -> Vec<&str> {
    h.iter().map(|h| h.entry.id.as_str()).collect()
}

/// A body of 1.5 MB of distinct words (more than an engine's index of one row may hold,
/// e.g. Postgres' 1 MiB tsvector) is accepted, found by its first and last words and by
/// a phrase at its start, and once deleted leaves every score as if it had never been
/// written.
async fn a_body_of_more_words_than_a_row_index_holds_is_indexed_and_leaves_the_scores_when_deleted(
    s: S,
) -> Result<()> {
    kb(&s, "food").await?;
    for (id, title, body) in FRUIT {
        put(&s, note("food", id, title, body)).await?;
    }
    let before = scored(&s, "apple OR cherry").await?;
    // Words of 9 letters and a space: wa…, distinct, up to the limit.
    let word = |i: usize| {
        let mut w = String::from("w");
        let mut x = i;
        for _ in 0..8 {
            w.push((b'a' + (x % 26) as u8) as char);
            x /= 26;
        }
        w
    };
    let n = 150_000;
    let mut body = String::with_capacity(10 * n + 8);
    for i in 0..n {
        body.push_str(&word(i));
        body.push(' ');
    }
    body.push_str("apple");
    assert!(body.len() <= MAX_BODY_BYTES);
    put(&s, note("food", "huge", "huge", &body)).await?;
    for q in [word(0), word(n - 1), format!("\"{} {}\"", word(0), word(1))] {
        assert_eq!(found(&s, &q).await?, ["huge"], "{q}");
    }
    assert!(s.delete_entry(&EntryKey::new("food", "huge")).await?);
    assert!(found(&s, &word(n - 1)).await?.is_empty());
    assert_eq!(scored(&s, "apple OR cherry").await?, before);
    Ok(())
}

/// (id, score) of a query's hits, in order.
async fn scored(s: &S, q: &str) -> Result<Vec<(String, f64)>> {
    Ok(s.search(q, &Filter::new())
        .await?
        .into_iter()
        .map(|h| (h.entry.id, h.score))
        .collect())
}

/// `search_ranked` returns `search`'s keys, scores and ranks, page by page, under filters.
async fn ranked_search_is_the_ranking_of_search(s: S) -> Result<()> {
    food_corpus(&s).await?;
    for q in [
        "apple",
        "cinnamon OR apple OR banana",
        "\"banana bread\"",
        "walnu*",
        "nothingmatches",
    ] {
        for filter in [
            Filter::new(),
            Filter::new().kb("food").limit(2),
            Filter::new().kb("food").limit(2).offset(1),
        ] {
            let full: Vec<(EntryKey, f64, usize)> = s
                .search(q, &filter)
                .await?
                .into_iter()
                .map(|h| (h.entry.key(), h.score, h.rank))
                .collect();
            let ranked: Vec<(EntryKey, f64, usize)> = s
                .search_ranked(q, &filter)
                .await?
                .into_iter()
                .map(|h| (h.key, h.score, h.rank))
                .collect();
            assert_eq!(ranked, full, "{q:?} {filter:?}");
        }
    }
    assert!(matches!(
        s.search_ranked("(unbalanced", &Filter::new()).await,
        Err(StorageError::InvalidQuery { .. })
    ));
    Ok(())
}

/// `snippets` cuts, for given keys, the snippets `search` shows them with; a key that is
/// absent or does not match gets an empty one.
async fn snippets_of_keys_are_the_snippets_search_gives(s: S) -> Result<()> {
    food_corpus(&s).await?;
    let hits = s.search("cinnamon OR apple", &Filter::new()).await?;
    assert!(hits.len() >= 2);
    let mut keys: Vec<EntryKey> = hits.iter().map(|h| h.entry.key()).collect();
    keys.reverse();
    let snippets = s.snippets("cinnamon OR apple", &keys).await?;
    let expected: Vec<Snippet> = hits.iter().rev().map(|h| h.snippet.clone()).collect();
    assert_eq!(snippets, expected);
    let odd = [EntryKey::new("food", "missing"), EntryKey::new("food", "d")];
    assert_eq!(
        s.snippets("yogurt", &odd).await?,
        [Snippet::default(), Snippet::default()]
    );
    Ok(())
}
