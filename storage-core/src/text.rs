//! The words of a text as the full-text index sees them: the tokens of SQLite FTS5's
//! `unicode61 remove_diacritics 2` tokeniser, computed here so that a backend whose
//! engine tokenises differently (Postgres' parser depends on the database's locale and
//! keeps `topic/ai` or e-mail addresses whole) indexes the same words as SQLite, and so
//! the work happens in the client rather than on a shared database server.
//!
//! The rules, as FTS5 applies them:
//! - a token is a run of letters (`L*`), digits and other numbers (`N*`), private-use
//!   (`Co`) and unassigned code points; everything else separates tokens;
//! - inside a token, a combining accent (those of U+0300–U+0331 FTS5 lists) is dropped
//!   without ending the token, so a decomposed `é` reads like a composed one;
//! - every character is case-folded, and a Latin letter with accents becomes its ASCII
//!   base letter (`é` → `e`, `ǖ` → `u`); other scripts keep their accents (`й`, `ά`).
//!
//! One rule is added to FTS5's: a character of a script written without spaces (CJK,
//! [`is_unspaced`]) is a token of its own. SQLite indexes with this module through a
//! custom FTS5 tokenizer, Postgres through its client-side analysis, so the two agree.
//!
//! SQLite's tables date from an older Unicode version than the crates used here, so a
//! character assigned since may tokenise differently; `storage-sqlite`'s tokenizer test
//! compares the two over the Basic Multilingual Plane.

use std::ops::Range;

use unicode_normalization::char::decompose_canonical;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// The tokens of `text`, case-folded and with Latin accents removed, in order.
pub fn tokens(text: &str) -> Tokens<'_> {
    Tokens {
        scan: Scan::new(text),
    }
}

/// Iterator returned by [`tokens`].
pub struct Tokens<'a> {
    scan: Scan<'a>,
}

impl Iterator for Tokens<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut token = String::new();
        self.scan.next_into(&mut token).map(|_| token)
    }
}

/// Calls `f` with each token of `text`, in order: [`tokens`] without allocating one
/// string per token (an index writer looks most tokens up and keeps few of them).
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    for_each_token_span(text, |token, _| {
        f(token);
        true
    });
}

/// Calls `f` with each token of `text` and the byte range of `text` it was read from
/// (what a highlighter marks), until `f` returns false.
pub fn for_each_token_span(text: &str, mut f: impl FnMut(&str, Range<usize>) -> bool) {
    let (mut scan, mut token) = (Scan::new(text), String::new());
    while let Some(span) = scan.next_into(&mut token) {
        if !f(&token, span) {
            return;
        }
        token.clear();
    }
}

/// Whether `c` belongs to a script written without spaces between words: Han
/// ideographs, hiragana, katakana and Hangul. Each such character is a token of its
/// own, so a word inside a sentence (`東京` in `東京都に住む`) is found as the phrase of
/// its characters — the unigram indexing of CJK that needs no dictionary. FTS5's
/// `unicode61` keeps the whole run as one token, which only the whole run finds.
/// (Thai, Lao, Khmer and Myanmar need a dictionary to split and are left as runs.)
pub fn is_unspaced(c: char) -> bool {
    let c = c as u32;
    UNSPACED.iter().any(|r| r.contains(&c))
}

/// The code points [`is_unspaced`] accepts (also what a backend selects rows by when
/// these rules change, as Postgres' v7 upgrade does).
pub const UNSPACED: [std::ops::RangeInclusive<u32>; 12] = [
    0x1100..=0x11FF,   // Hangul Jamo
    0x3005..=0x3007,   // 々 〆 〇
    0x3040..=0x30FF,   // hiragana, katakana (with ー)
    0x3130..=0x318F,   // Hangul compatibility Jamo
    0x31F0..=0x31FF,   // katakana phonetic extensions
    0x3400..=0x4DBF,   // CJK extension A
    0x4E00..=0x9FFF,   // CJK unified ideographs
    0xA960..=0xA97F,   // Hangul Jamo extended A
    0xAC00..=0xD7FF,   // Hangul syllables, Jamo extended B
    0xF900..=0xFAFF,   // CJK compatibility ideographs
    0xFF66..=0xFF9F,   // half-width katakana
    0x20000..=0x3134F, // CJK extensions B–G, compatibility supplement
];

/// A cursor over a text's characters that reads one token at a time.
struct Scan<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
}

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.char_indices().peekable(),
        }
    }

    /// Reads the next token into `token` (empty on entry) and returns the byte range it
    /// spans; `None` at the end of the text.
    fn next_into(&mut self, token: &mut String) -> Option<Range<usize>> {
        let mut span: Option<Range<usize>> = None;
        while let Some(&(i, c)) = self.chars.peek() {
            let end = i + c.len_utf8();
            if is_token_char(c) {
                if is_unspaced(c) {
                    if span.is_some() {
                        break; // ends the token before it; read again next time
                    }
                    self.chars.next();
                    fold_into(c, token);
                    return Some(i..end);
                }
                self.chars.next();
                fold_into(c, token);
                span = Some(span.map_or(i, |s| s.start)..end);
            } else if let Some(s) = span.as_mut().filter(|_| is_diacritic(c)) {
                // Dropped inside a token, as FTS5 does.
                self.chars.next();
                s.end = end;
            } else {
                self.chars.next();
                if span.is_some() {
                    break;
                }
            }
        }
        span
    }
}

/// Whether `c` can be part of a token: letters, numbers, private-use and unassigned code
/// points (FTS5's default `L* N* Co`, whose tables count unassigned code points in).
pub fn is_token_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    match c.general_category_group() {
        GeneralCategoryGroup::Letter | GeneralCategoryGroup::Number => true,
        // Unassigned code points are token characters in FTS5's tables too.
        GeneralCategoryGroup::Other => matches!(
            c.general_category(),
            GeneralCategory::PrivateUse | GeneralCategory::Unassigned
        ),
        _ => false,
    }
}

/// The combining accents FTS5 treats as part of the token they follow (some of
/// U+0300–U+0331).
fn is_diacritic(c: char) -> bool {
    // FTS5's own list: bit i of the masks is U+0300 + i.
    const LOW: u32 = 0x0802_9FDF;
    const HIGH: u32 = 0x0003_61F8;
    match c as u32 {
        c @ 0x300..=0x31F => LOW & (1 << (c - 0x300)) != 0,
        c @ 0x320..=0x331 => HIGH & (1 << (c - 0x320)) != 0,
        _ => false,
    }
}

/// Appends `c` case-folded, a Latin letter with accents as its ASCII base.
fn fold_into(c: char, out: &mut String) {
    if c.is_ascii() {
        out.push(c.to_ascii_lowercase());
        return;
    }
    if let Some(folded) = fold_exception(c) {
        out.push(folded);
        return;
    }
    // A lower-case form of several characters (`İ` → `i` + U+0307) loses its accents.
    for lower in c.to_lowercase().filter(|l| !is_diacritic(*l)) {
        out.push(ascii_base(lower).unwrap_or(lower));
    }
}

/// The characters whose simple case folding (what FTS5 applies) differs from their
/// lower case (what `char::to_lowercase` gives): Unicode's CaseFolding.txt lists these
/// few, so a table is shorter than a case-folding dependency.
fn fold_exception(c: char) -> Option<char> {
    Some(match c {
        'µ' => 'μ',
        'ſ' | 'ẛ' => 's',
        'ς' => 'σ',
        'ϐ' => 'β',
        'ϑ' => 'θ',
        'ϕ' => 'φ',
        'ϖ' => 'π',
        'ϰ' => 'κ',
        'ϱ' => 'ρ',
        'ϵ' => 'ε',
        '\u{1fbe}' | '\u{345}' => 'ι',
        _ => return None,
    })
}

/// The ASCII letter a character is made of when its canonical decomposition is that
/// letter followed by combining accents only (`é` = `e` + U+0301); `None` otherwise.
fn ascii_base(c: char) -> Option<char> {
    let (mut base, mut accents_only) = (None, true);
    decompose_canonical(c, |d| {
        if base.is_none() {
            base = Some(d);
        } else if !('\u{300}'..='\u{36f}').contains(&d) {
            accents_only = false;
        }
    });
    base.filter(|b| *b != c && b.is_ascii_alphabetic() && accents_only)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        let all: Vec<String> = tokens(s).collect();
        let mut each = Vec::new();
        for_each_token(s, |t| each.push(t.to_owned()));
        assert_eq!(each, all, "for_each_token and tokens disagree on {s:?}");
        all
    }

    #[test]
    fn splits_on_everything_but_letters_and_digits() {
        assert_eq!(
            toks("topic/ai e-mail: a.b@c.d"),
            ["topic", "ai", "e", "mail", "a", "b", "c", "d"]
        );
        assert_eq!(
            toks("  Rust's 2024 edition!"),
            ["rust", "s", "2024", "edition"]
        );
        assert!(toks(" ,.;- ").is_empty());
    }

    #[test]
    fn folds_case_and_latin_accents() {
        assert_eq!(toks("Crème BRÛLÉE Ǖber"), ["creme", "brulee", "uber"]);
        // Decomposed accents are dropped inside a token.
        assert_eq!(toks("cafe\u{301}s"), ["cafes"]);
        // Other scripts keep their accents; their case folds.
        assert_eq!(toks("Дом Йод ΆΛΦΑ"), ["дом", "йод", "άλφα"]);
        // Letters without an ASCII base stay (ø, ß, æ are letters of their own).
        assert_eq!(toks("Øre straße Æther"), ["øre", "straße", "æther"]);
    }

    #[test]
    fn keeps_numbers_of_other_scripts() {
        assert_eq!(toks("٣٤ Ⅻ"), ["٣٤", "ⅻ"]);
    }

    #[test]
    fn cjk_characters_are_tokens_of_their_own() {
        assert_eq!(
            toks("日本語のテキスト"),
            ["日", "本", "語", "の", "テ", "キ", "ス", "ト"]
        );
        assert_eq!(
            toks("한국어를 배운다"),
            ["한", "국", "어", "를", "배", "운", "다"]
        );
        // Mixed with spaced scripts: the Latin run ends where the CJK run starts.
        assert_eq!(toks("Rust语言v2"), ["rust", "语", "言", "v2"]);
    }

    #[test]
    fn spans_are_the_byte_ranges_tokens_were_read_from() {
        let text = "Crème, 東京 cafe\u{301}!";
        let mut spans = Vec::new();
        for_each_token_span(text, |t, r| {
            spans.push((t.to_owned(), &text[r]));
            true
        });
        assert_eq!(
            spans,
            [
                ("creme".to_owned(), "Crème"),
                ("東".to_owned(), "東"),
                ("京".to_owned(), "京"),
                ("cafe".to_owned(), "cafe\u{301}"),
            ]
        );
        // Stopping early stops.
        let mut n = 0;
        for_each_token_span("a b c", |_, _| {
            n += 1;
            n < 2
        });
        assert_eq!(n, 2);
    }
}
