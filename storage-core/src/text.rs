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
//! SQLite's tables date from an older Unicode version than the crates used here, so a
//! character assigned since may tokenise differently; `storage-sqlite`'s tokenizer test
//! compares the two over the Basic Multilingual Plane.

use unicode_normalization::char::decompose_canonical;
use unicode_properties::{GeneralCategory, GeneralCategoryGroup, UnicodeGeneralCategory};

/// The tokens of `text`, case-folded and with Latin accents removed, in order.
pub fn tokens(text: &str) -> Tokens<'_> {
    Tokens {
        chars: text.chars(),
    }
}

/// Iterator returned by [`tokens`].
pub struct Tokens<'a> {
    chars: std::str::Chars<'a>,
}

impl Iterator for Tokens<'_> {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut token = String::new();
        next_into(&mut self.chars, &mut token).then_some(token)
    }
}

/// Calls `f` with each token of `text`, in order: [`tokens`] without allocating one
/// string per token (an index writer looks most tokens up and keeps few of them).
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    let (mut chars, mut token) = (text.chars(), String::new());
    while next_into(&mut chars, &mut token) {
        f(&token);
        token.clear();
    }
}

/// Reads the next token into `token` (empty on entry); false at the end of the text.
fn next_into(chars: &mut std::str::Chars<'_>, token: &mut String) -> bool {
    for c in chars.by_ref() {
        if is_token_char(c) {
            fold_into(c, token);
        } else if !token.is_empty() && is_diacritic(c) {
            // Dropped inside a token, as FTS5 does.
        } else if !token.is_empty() {
            break;
        }
    }
    !token.is_empty()
}

/// Letters, numbers, private-use and unassigned code points (FTS5's default
/// `L* N* Co`, whose tables count unassigned code points in).
fn is_token_char(c: char) -> bool {
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
    fn keeps_cjk_and_numbers_of_other_scripts() {
        assert_eq!(toks("日本語のテキスト"), ["日本語のテキスト"]);
        assert_eq!(toks("٣٤ Ⅻ"), ["٣٤", "ⅻ"]);
    }
}
