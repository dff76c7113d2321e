//! The v7 upgrade's re-analysis: entries whose text holds CJK characters were indexed
//! when a run of them was one token; the tokenizer now makes each character one
//! (`storage_core::text::is_unspaced`), so their index data is computed again here, in
//! the client as every write's is.

use storage_core::text::UNSPACED;
use tokio_postgres::types::ToSql;
use tokio_postgres::Transaction;

use crate::search::analyze::{analyse, words, Lexicon, Weight};

type PgResult<T> = std::result::Result<T, tokio_postgres::Error>;

/// [`UNSPACED`] as a Postgres regular expression (a bracket of `\Uhhhhhhhh` ranges).
fn unspaced_pattern() -> String {
    let ranges: String = UNSPACED
        .iter()
        .map(|r| format!("\\U{:08x}-\\U{:08x}", r.start(), r.end()))
        .collect();
    format!("[{ranges}]")
}

/// Re-analyses in place every entry whose text holds a CJK character: the v7 migration,
/// when the tokenizer began to split those scripts into one token per character. Each
/// row gets a new doc (so the update trigger takes its old terms out of the document
/// frequencies and corrects the corpus length) and the postings of its new analysis;
/// nothing a reader sees changes (not `updated_at`, not the embedding queue).
pub(crate) async fn reanalyse_unspaced(tx: &Transaction<'_>, porter: bool) -> PgResult<usize> {
    let lexicon = Lexicon::new(porter);
    let rows = tx
        .query(
            "SELECT rowid, title, tags_text, summary, body FROM entries \
             WHERE concat_ws(' ', title, tags_text, summary, body) ~ $1",
            &[&unspaced_pattern()],
        )
        .await?;
    let update = tx
        .prepare(
            "UPDATE entries SET doc = nextval('entry_docs'), tsv = $2, terms = $3, doc_len = $4 \
             WHERE rowid = $1 RETURNING doc",
        )
        .await?;
    let postings = tx
        .prepare(
            "INSERT INTO term_blocks (term, n, docs, tfs, dls) \
             SELECT t, 1, ARRAY[$2::bigint], ARRAY[tf], ARRAY[$3::int] \
             FROM unnest($1::text[], $4::real[]) AS u(t, tf)",
        )
        .await?;
    for chunk in rows.chunks(500) {
        let mut texts = Vec::with_capacity(chunk.len());
        for r in chunk {
            let rowid: i64 = r.try_get(0)?;
            let fields: [String; 4] = [r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?];
            texts.push((rowid, fields));
        }
        let words = words(texts.iter().flat_map(|(_, f)| f.iter().map(String::as_str)));
        let stems = lexicon.stems(tx, words).await?;
        for (rowid, [title, tags, summary, body]) in &texts {
            let fields = [
                (title.as_str(), Weight::A),
                (tags.as_str(), Weight::B),
                (summary.as_str(), Weight::B),
                (body.as_str(), Weight::C),
            ];
            let a = analyse(&fields, &stems);
            let beyond = a.terms_beyond_tsvector();
            let params: [&(dyn ToSql + Sync); 4] = [rowid, &a.tsv, &beyond, &a.len];
            let doc: i64 = tx.query_one(&update, &params).await?.try_get(0)?;
            if !a.terms.is_empty() {
                let params: [&(dyn ToSql + Sync); 4] = [&a.terms, &doc, &a.len, &a.tfs];
                tx.execute(&postings, &params).await?;
            }
        }
    }
    Ok(rows.len())
}
