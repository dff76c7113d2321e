//! Text in other scripts: accented Latin, Cyrillic, Greek, CJK, emoji and mixed scripts
//! are stored as written and found by their words, the same on every backend.

use storage_core::*;

use crate::fixtures::*;

crate::area! {
    scripts, __scripts_cases:
    accented_latin_is_found_with_or_without_its_accents,
    cyrillic_and_greek_words_are_found_in_any_case,
    a_cjk_word_inside_a_sentence_is_found_by_that_word,
    cjk_characters_out_of_order_do_not_match_a_word,
    emoji_and_mixed_scripts_in_titles_and_tags_round_trip_and_are_searchable,
    snippets_of_multibyte_text_cut_on_character_boundaries_and_mark_the_word,
}

async fn world(s: &S) -> Result<()> {
    kb(s, "food").await?;
    for (id, title, body) in [
        ("fr", "Café au lait", "Un café crème, s'il vous plaît."),
        ("plain", "Cafe menu", "coffee and cake"),
        ("ru", "Дом у реки", "Большой ДОМ стоит у реки."),
        ("el", "Άλφα και Ωμέγα", "Η αρχή και το τέλος."),
        ("zh", "机器学习笔记", "我喜欢学习机器学习和深度学习。"),
        ("ja", "日記", "私は東京に住んでいます。京都にも行きました。"),
        ("ko", "공부", "나는 한국어를 배운다."),
    ] {
        put(s, note("food", id, title, body)).await?;
    }
    Ok(())
}

/// `café`, `cafe` and `CAFÉ` find the same entries: Latin accents and case fold away.
async fn accented_latin_is_found_with_or_without_its_accents(s: S) -> Result<()> {
    world(&s).await?;
    for q in ["café", "cafe", "CAFÉ", "cafe\u{301}"] {
        assert_eq!(found(&s, q).await?, ["fr", "plain"], "query {q:?}");
    }
    assert_eq!(found(&s, "creme").await?, ["fr"]);
    Ok(())
}

/// Cyrillic and Greek words are found whatever their case.
async fn cyrillic_and_greek_words_are_found_in_any_case(s: S) -> Result<()> {
    world(&s).await?;
    for q in ["дом", "ДОМ", "Дом"] {
        assert_eq!(found(&s, q).await?, ["ru"], "query {q:?}");
    }
    assert_eq!(found(&s, "реки").await?, ["ru"]);
    assert_eq!(found(&s, "ωμέγα").await?, ["el"]);
    assert_eq!(found(&s, "ΩΜΈΓΑ").await?, ["el"]);
    assert_eq!(found(&s, "τέλος").await?, ["el"]);
    Ok(())
}

/// A Chinese, Japanese or Korean word inside a sentence (no spaces around it) is found
/// by that word, alone, in a phrase, or with other words.
async fn a_cjk_word_inside_a_sentence_is_found_by_that_word(s: S) -> Result<()> {
    world(&s).await?;
    assert_eq!(found(&s, "机器学习").await?, ["zh"]);
    assert_eq!(found(&s, "深度学习").await?, ["zh"]);
    assert_eq!(found(&s, "東京").await?, ["ja"]);
    assert_eq!(found(&s, "京都").await?, ["ja"]);
    assert_eq!(found(&s, "\"住んで\"").await?, ["ja"]);
    assert_eq!(found(&s, "한국어").await?, ["ko"]);
    assert_eq!(found(&s, "東京 OR 한국어").await?, ["ja", "ko"]);
    assert_eq!(found(&s, "東京 -京都").await?, Vec::<String>::new());
    Ok(())
}

/// The characters of a word in another order, or apart, are not that word.
async fn cjk_characters_out_of_order_do_not_match_a_word(s: S) -> Result<()> {
    world(&s).await?;
    assert_eq!(found(&s, "京東").await?, Vec::<String>::new());
    assert_eq!(found(&s, "习学器机").await?, Vec::<String>::new());
    // Both characters occur in the entry, but never side by side.
    assert_eq!(found(&s, "私京").await?, Vec::<String>::new());
    Ok(())
}

/// Emoji and several scripts in one title and in tags are stored exactly as written,
/// filter by tag, and their words are searchable.
async fn emoji_and_mixed_scripts_in_titles_and_tags_round_trip_and_are_searchable(
    s: S,
) -> Result<()> {
    kb(&s, "food").await?;
    let title = "🚀 Launch 計画 — план Ω";
    let e = NewEntry::new("food", "mix")
        .title(title)
        .body("Notes 🎉 with ñ and 漢字.")
        .tags(["日本語", "émoji-🎉", "тег"]);
    put(&s, e).await?;
    let back = s
        .get_entry(&EntryKey::new("food", "mix"))
        .await?
        .expect("the entry was written");
    assert_eq!(back.title, title);
    assert_eq!(back.body, "Notes 🎉 with ñ and 漢字.");
    let mut tags = back.tags.clone();
    tags.sort();
    let mut want = vec!["émoji-🎉", "тег", "日本語"];
    want.sort();
    assert_eq!(tags, want);
    for q in ["計画", "план", "launch", "漢字", "日本語", "тег", "ω"] {
        assert_eq!(found(&s, q).await?, ["mix"], "query {q:?}");
    }
    let tagged = s
        .list_entries(&Filter::new().kb("food").tag("émoji-🎉"))
        .await?;
    assert_eq!(id_set(&tagged), ["mix"]);
    Ok(())
}

/// A snippet of a long text in multi-byte scripts is cut on character boundaries and
/// marks only characters of the query word.
async fn snippets_of_multibyte_text_cut_on_character_boundaries_and_mark_the_word(
    s: S,
) -> Result<()> {
    kb(&s, "food").await?;
    let filler = "日本語のテキストと Кириллица и ελληνικά. ".repeat(40);
    let body = format!("{filler}私は東京に住んでいます。{filler}");
    put(&s, note("food", "long", "長い文書", &body)).await?;
    let hits = s.search("東京", &Filter::new().kb("food")).await?;
    assert_eq!(hits.len(), 1);
    let snippet = &hits[0].snippet;
    assert!(snippet.text.len() < body.len(), "the snippet was cut");
    assert!(snippet.text.contains("東京"), "{:?}", snippet.text);
    assert!(!snippet.highlights.is_empty(), "{snippet:?}");
    for &(a, b) in &snippet.highlights {
        let marked = snippet
            .text
            .get(a..b)
            .unwrap_or_else(|| panic!("highlight {a}..{b} is not on character boundaries"));
        assert!(
            !marked.is_empty() && marked.chars().all(|c| "東京".contains(c)),
            "marked {marked:?} in {:?}",
            snippet.text
        );
    }
    Ok(())
}
