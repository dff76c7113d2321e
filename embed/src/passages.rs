//! Splitting long text into passages that fit a model's token window.
//!
//! Text is cut into units — paragraphs, then sentences, then (for a run-on sentence) word
//! windows — and units are packed greedily into passages of at most `max_tokens`. Each
//! passage after the first starts with the last units of the previous one, up to
//! `overlap_tokens`, so a sentence that straddles a boundary is whole in one of them.
//! Passages are exact substrings of the input (boundaries fall between units), so a
//! snippet shown to a user is text they wrote.

/// Limits for [`split_passages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassageConfig {
    /// Most tokens in a passage (the model's window).
    pub max_tokens: usize,
    /// Tokens repeated from the end of one passage at the start of the next.
    pub overlap_tokens: usize,
}

impl PassageConfig {
    /// The model's window with an overlap of an eighth of it.
    pub fn for_window(max_tokens: usize) -> Self {
        Self {
            max_tokens: max_tokens.max(1),
            overlap_tokens: max_tokens / 8,
        }
    }
}

/// Splits `text` into passages of at most `cfg.max_tokens` tokens as counted by
/// `count_tokens` (the embedder's tokenizer). Short text is one passage; empty text is
/// none.
pub fn split_passages(
    text: &str,
    cfg: PassageConfig,
    count_tokens: &dyn Fn(&str) -> usize,
) -> Vec<String> {
    let text = text.trim();
    if text.is_empty() {
        return Vec::new();
    }
    if count_tokens(text) <= cfg.max_tokens {
        return vec![text.to_owned()];
    }
    let units = units(text, cfg.max_tokens, count_tokens);
    let overlap = cfg.overlap_tokens.min(cfg.max_tokens / 2);
    let mut passages = Vec::new();
    let mut first = 0; // index of the current passage's first unit
    while first < units.len() {
        // Extend while the passage still fits (a unit alone always fits, by construction).
        let mut end = first;
        let mut tokens = 0;
        while end < units.len() && (end == first || tokens + units[end].tokens <= cfg.max_tokens) {
            tokens += units[end].tokens;
            end += 1;
        }
        passages.push(
            text[units[first].start..units[end - 1].end]
                .trim()
                .to_owned(),
        );
        if end == units.len() {
            break;
        }
        // Next passage starts with trailing units of this one, within the overlap budget,
        // but always moves forward by at least one unit.
        let mut next = end;
        let mut carried = 0;
        while next > first + 1 && carried + units[next - 1].tokens <= overlap {
            carried += units[next - 1].tokens;
            next -= 1;
        }
        first = next;
    }
    passages
}

#[derive(Debug, Clone, Copy)]
struct Unit {
    start: usize,
    end: usize,
    tokens: usize,
}

/// Paragraphs, then sentences, then word windows, each no longer than `max` tokens.
fn units(text: &str, max: usize, count: &dyn Fn(&str) -> usize) -> Vec<Unit> {
    let mut out = Vec::new();
    for (ps, pe) in split_spans(text, 0, text.len(), is_paragraph_break) {
        let t = count(&text[ps..pe]);
        if t <= max {
            out.push(Unit {
                start: ps,
                end: pe,
                tokens: t,
            });
            continue;
        }
        for (ss, se) in split_spans(text, ps, pe, is_sentence_break) {
            let t = count(&text[ss..se]);
            if t <= max {
                out.push(Unit {
                    start: ss,
                    end: se,
                    tokens: t,
                });
            } else {
                word_windows(text, ss, se, max, count, &mut out);
            }
        }
    }
    out
}

/// A run-on sentence: cut at whitespace into windows that fit.
fn word_windows(
    text: &str,
    start: usize,
    end: usize,
    max: usize,
    count: &dyn Fn(&str) -> usize,
    out: &mut Vec<Unit>,
) {
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut pos = start;
    for w in text[start..end].split_inclusive(char::is_whitespace) {
        words.push((pos, pos + w.len()));
        pos += w.len();
    }
    let mut i = 0;
    while i < words.len() {
        let mut j = i + 1;
        // Grow the window one word at a time while it fits; counting the window (not
        // summing words) keeps the tokenizer's merges honest.
        while j < words.len() && count(&text[words[i].0..words[j].1]) <= max {
            j += 1;
        }
        let (s, e) = (words[i].0, words[j - 1].1);
        let t = count(&text[s..e]);
        if t > max {
            // One "word" longer than the window (a URL, a base64 blob): cut it into the
            // longest prefixes that fit, found by binary search over char boundaries.
            let mut s = s;
            while s < e {
                let (mut lo, mut hi) = (s, e);
                if count(&text[s..e]) <= max {
                    lo = e;
                } else {
                    while hi - lo > 1 {
                        let mut mid = lo + (hi - lo) / 2;
                        while !text.is_char_boundary(mid) {
                            mid += 1;
                        }
                        if mid >= hi {
                            break;
                        }
                        if count(&text[s..mid]) <= max {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                }
                if lo == s {
                    // Not even one character fits the count: take one anyway.
                    lo = s + text[s..].chars().next().map_or(1, char::len_utf8);
                }
                out.push(Unit {
                    start: s,
                    end: lo,
                    tokens: count(&text[s..lo]),
                });
                s = lo;
            }
        } else {
            out.push(Unit {
                start: s,
                end: e,
                tokens: t,
            });
        }
        i = j;
    }
}

/// Splits `text[start..end]` after every position where `is_break` says so; spans keep
/// their trailing separator so they tile the range.
fn split_spans(
    text: &str,
    start: usize,
    end: usize,
    is_break: fn(&str, usize) -> Option<usize>,
) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut span_start = start;
    let mut i = start;
    while i < end {
        if let Some(after) = is_break(&text[..end], i) {
            if text[span_start..after].trim().is_empty() {
                span_start = after;
            } else {
                spans.push((span_start, after));
                span_start = after;
            }
            i = after;
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if !text[span_start..end].trim().is_empty() {
        spans.push((span_start, end));
    }
    spans
}

/// A blank line (two newlines with only spaces between) ends a paragraph.
fn is_paragraph_break(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let mut chars = rest.char_indices();
    if !matches!(chars.next(), Some((_, '\n'))) {
        return None;
    }
    for (j, c) in chars {
        match c {
            '\n' => {
                let after = i + j + 1;
                let tail = &text[after..];
                return Some(after + (tail.len() - tail.trim_start().len()));
            }
            ' ' | '\t' | '\r' => {}
            _ => return None,
        }
    }
    None
}

/// `.`, `!` or `?` (possibly followed by closing quotes/brackets) then whitespace ends a
/// sentence; so does a single newline (lists, headings).
fn is_sentence_break(text: &str, i: usize) -> Option<usize> {
    let rest = &text[i..];
    let c = rest.chars().next()?;
    if c == '\n' {
        return Some(i + 1);
    }
    if !matches!(c, '.' | '!' | '?') {
        return None;
    }
    let mut j = i + 1;
    while let Some(n) = text[j..].chars().next() {
        if matches!(n, '"' | '\'' | ')' | ']' | '’' | '”') {
            j += n.len_utf8();
        } else {
            break;
        }
    }
    let ws = text[j..].chars().next()?;
    if !ws.is_whitespace() {
        return None;
    }
    let tail = &text[j..];
    Some(j + (tail.len() - tail.trim_start().len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(t: &str) -> usize {
        t.split_whitespace().count()
    }

    #[test]
    fn short_text_is_one_passage_and_empty_is_none() {
        let cfg = PassageConfig::for_window(10);
        assert_eq!(split_passages("  one two  ", cfg, &words), ["one two"]);
        assert!(split_passages(" \n ", cfg, &words).is_empty());
    }

    #[test]
    fn passages_fit_the_window_cover_the_text_and_overlap() {
        let text = (0..40)
            .map(|i| format!("Sentence number {i} is here."))
            .collect::<Vec<_>>()
            .join(" ");
        let cfg = PassageConfig {
            max_tokens: 20,
            overlap_tokens: 5,
        };
        let ps = split_passages(&text, cfg, &words);
        assert!(ps.len() > 1);
        for p in &ps {
            assert!(words(p) <= 20, "{p:?}");
            assert!(text.contains(p.as_str()), "passages are substrings");
            assert!(p.ends_with('.'), "cut on sentence boundaries: {p:?}");
        }
        for i in 0..40 {
            let s = format!("Sentence number {i} is here.");
            assert!(ps.iter().any(|p| p.contains(&s)), "{s} lost");
        }
        // Consecutive passages share their boundary sentence.
        for w in ps.windows(2) {
            let last = w[0].rsplit_once("Sentence").unwrap().1;
            assert!(w[1].contains(last), "no overlap between {w:?}");
        }
    }

    #[test]
    fn paragraphs_are_preferred_boundaries() {
        let a = "alpha ".repeat(8);
        let b = "beta ".repeat(8);
        let text = format!("{}\n\n{}", a.trim(), b.trim());
        let ps = split_passages(
            &text,
            PassageConfig {
                max_tokens: 10,
                overlap_tokens: 0,
            },
            &words,
        );
        assert_eq!(ps, [a.trim(), b.trim()]);
    }

    #[test]
    fn run_on_text_and_huge_words_are_cut_to_fit() {
        let text = "word ".repeat(95);
        let cfg = PassageConfig {
            max_tokens: 10,
            overlap_tokens: 2,
        };
        let ps = split_passages(&text, cfg, &words);
        assert!(ps.iter().all(|p| words(p) <= 10));
        let total: usize = ps.iter().map(|p| words(p)).sum();
        assert!(total >= 95);
        // A single 1,000-character token, counted at 4 bytes per token.
        let blob = "x".repeat(1000);
        let bytes = |t: &str| t.len().div_ceil(4);
        let ps = split_passages(&blob, PassageConfig::for_window(64), &bytes);
        assert!(ps.len() >= 4, "{}", ps.len());
        assert!(ps.iter().all(|p| bytes(p) <= 64));
        assert_eq!(ps.concat().len(), 1000);
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let text = "é".repeat(500);
        let bytes = |t: &str| t.len().div_ceil(4);
        let ps = split_passages(&text, PassageConfig::for_window(32), &bytes);
        assert!(ps.len() > 1);
        assert_eq!(ps.concat(), text);
    }
}
