//! `storage_core::text::tokens` (the tokenizer both backends index with) must find the
//! tokens FTS5's `unicode61 remove_diacritics 2` finds, but for the one rule it adds
//! (CJK characters are tokens of their own), so the index keeps FTS5's word rules.
//! Compared over every character of the Basic Multilingual Plane, alone and inside a
//! word.
#![allow(clippy::unwrap_used)]

use rusqlite::Connection;

/// FTS5's tokens of each text, through an `fts5vocab` instance table.
fn fts5_tokens(texts: &[String]) -> Vec<Vec<String>> {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'unicode61 remove_diacritics 2');
         CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut ins = tx
            .prepare("INSERT INTO t (rowid, x) VALUES (?1, ?2)")
            .unwrap();
        for (i, s) in texts.iter().enumerate() {
            ins.execute(rusqlite::params![i as i64 + 1, s]).unwrap();
        }
    }
    tx.commit().unwrap();
    let mut out = vec![Vec::new(); texts.len()];
    let mut q = conn
        .prepare("SELECT doc, term FROM v ORDER BY doc, \"offset\"")
        .unwrap();
    let rows = q
        .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        let (doc, term) = row.unwrap();
        out[doc as usize - 1].push(term);
    }
    out
}

#[test]
fn core_tokens_match_fts5_unicode61_over_the_bmp() {
    let chars: Vec<char> = (0x20u32..0x10000).filter_map(char::from_u32).collect();
    let texts: Vec<String> = chars
        .iter()
        .flat_map(|c| [format!("{c}"), format!("Q{c}z {c}Ab")])
        .collect();
    let expected = fts5_tokens(&texts);
    let mut mismatches = Vec::new();
    for (i, (text, fts5)) in texts.iter().zip(&expected).enumerate() {
        let ours: Vec<String> = storage_core::text::tokens(text).collect();
        let c = chars[i / 2];
        if ours != *fts5 && !storage_core::text::is_unspaced(c) {
            mismatches.push((
                c,
                format!("U+{:04X} {text:?}: fts5 {fts5:?}, ours {ours:?}", c as u32),
            ));
        }
    }
    let show = |m: &[&(char, String)]| {
        m.iter()
            .take(40)
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The scripts people write in must agree exactly.
    let core: Vec<_> = mismatches
        .iter()
        .filter(|(c, _)| MUST_AGREE.iter().any(|r| r.contains(c)))
        .collect();
    assert!(
        core.is_empty(),
        "{} texts tokenise differently:\n{}",
        core.len(),
        show(&core)
    );
    // Elsewhere, only characters Unicode assigned or re-categorised after SQLite's tables
    // were built differ (1,376 texts of the 2 × 63,456 when this test was written).
    let all: Vec<_> = mismatches.iter().collect();
    assert!(
        all.len() <= 1_376,
        "{} texts tokenise differently, e.g.:\n{}",
        all.len(),
        show(&all)
    );
}

/// ASCII, Latin-1 and Latin Extended-A, Greek and Coptic, Cyrillic, Hebrew, Arabic,
/// Devanagari, and the CJK blocks (where only characters `is_unspaced` leaves in runs
/// are compared).
const MUST_AGREE: &[std::ops::RangeInclusive<char>] = &[
    '\u{20}'..='\u{17f}',
    '\u{370}'..='\u{37e}',
    '\u{380}'..='\u{3ff}',
    '\u{400}'..='\u{4ff}',
    '\u{590}'..='\u{5c7}',
    '\u{606}'..='\u{61b}',
    '\u{900}'..='\u{97f}',
    '\u{3040}'..='\u{30ff}',
    '\u{4e00}'..='\u{9fa5}',
    '\u{ac00}'..='\u{d7a3}',
];
