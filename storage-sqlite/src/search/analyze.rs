//! Text analysis for the full-text index: the FTS5 tokenizer `kb`, which splits text with
//! [`storage_core::text`] — the tokens the Postgres backend's client-side analysis uses —
//! so both backends index the same words. It is FTS5's `unicode61 remove_diacritics 2`
//! plus one rule `unicode61` cannot express: a CJK character is a token of its own, so
//! a Chinese or Japanese word inside a sentence is found by that word. The schema wraps
//! it in FTS5's `porter` stemmer (`tokenize = 'porter kb'`).
//!
//! FTS5 looks tokenizers up per connection, so every connection registers it before it
//! touches the index ([`register_tokenizer`]); a tool that opens the file without it can
//! read every table but `entries_fts`.
//!
//! Hand-written FFI (about forty lines of `unsafe`): rusqlite has no API for FTS5
//! tokenizers, and the crates that add one follow newer rusqlite releases than this
//! workspace's. The callbacks hold no state and never unwind into SQLite.

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::null_mut;

use rusqlite::ffi;
use rusqlite::Connection;
use storage_core::text::for_each_token_span;

/// Registers the `kb` tokenizer on `conn`. Every connection to a kb database needs it
/// before it reads or writes `entries_fts`; the store's own connections get it at open.
pub fn register_tokenizer(conn: &Connection) -> rusqlite::Result<()> {
    let api = fts5_api(conn)?;
    let mut tokenizer = ffi::fts5_tokenizer {
        xCreate: Some(create),
        xDelete: Some(delete),
        xTokenize: Some(tokenize),
    };
    // SAFETY: `api` is the live connection's FTS5 API (checked non-null); FTS5 copies the
    // tokenizer struct, so a stack value outlives the call as required.
    let rc = unsafe {
        match (*api).xCreateTokenizer {
            Some(create_tokenizer) => {
                create_tokenizer(api, c"kb".as_ptr(), null_mut(), &mut tokenizer, None)
            }
            None => ffi::SQLITE_ERROR,
        }
    };
    check(rc, "could not register the kb tokenizer")
}

/// The connection's `fts5_api`, obtained the documented way: `SELECT fts5(?1)` with a
/// pointer bound under the type name `fts5_api_ptr`.
fn fts5_api(conn: &Connection) -> rusqlite::Result<*mut ffi::fts5_api> {
    let mut api: *mut ffi::fts5_api = null_mut();
    let mut stmt: *mut ffi::sqlite3_stmt = null_mut();
    // SAFETY: the handle is the open connection's; the statement is finalized before
    // return, and `api` outlives the statement that writes through the bound pointer.
    let rc = unsafe {
        let db = conn.handle();
        let rc =
            ffi::sqlite3_prepare_v2(db, c"SELECT fts5(?1)".as_ptr(), -1, &mut stmt, null_mut());
        if rc != ffi::SQLITE_OK {
            return check(rc, "FTS5 is not available").map(|()| null_mut());
        }
        ffi::sqlite3_bind_pointer(
            stmt,
            1,
            (&mut api as *mut *mut ffi::fts5_api).cast(),
            c"fts5_api_ptr".as_ptr(),
            None,
        );
        ffi::sqlite3_step(stmt);
        ffi::sqlite3_finalize(stmt)
    };
    check(rc, "FTS5 is not available")?;
    if api.is_null() {
        return check(ffi::SQLITE_ERROR, "FTS5 is not available").map(|()| null_mut());
    }
    Ok(api)
}

fn check(rc: c_int, message: &str) -> rusqlite::Result<()> {
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some(message.to_owned()),
        ))
    }
}

/// The one tokenizer instance: it has no state, so every table shares this address.
static INSTANCE: u8 = 0;

/// `xCreate`: takes no arguments (`tokenize = 'kb'`).
unsafe extern "C" fn create(
    _user_data: *mut c_void,
    _args: *mut *const c_char,
    n_args: c_int,
    out: *mut *mut ffi::Fts5Tokenizer,
) -> c_int {
    if n_args != 0 || out.is_null() {
        return ffi::SQLITE_ERROR;
    }
    // SAFETY: FTS5 passes a valid out-pointer (checked non-null above).
    unsafe { *out = (&INSTANCE as *const u8).cast_mut().cast() };
    ffi::SQLITE_OK
}

/// `xDelete`: nothing was allocated.
unsafe extern "C" fn delete(_tokenizer: *mut ffi::Fts5Tokenizer) {}

type TokenCallback =
    unsafe extern "C" fn(*mut c_void, c_int, *const c_char, c_int, c_int, c_int) -> c_int;

/// `xTokenize`: the same tokens for documents, queries and auxiliary functions
/// (`snippet`), each with the byte range it was read from. Bytes that are not UTF-8 (the
/// store writes only UTF-8) separate tokens.
unsafe extern "C" fn tokenize(
    _tokenizer: *mut ffi::Fts5Tokenizer,
    ctx: *mut c_void,
    _flags: c_int,
    text: *const c_char,
    n_text: c_int,
    on_token: Option<TokenCallback>,
) -> c_int {
    let Some(on_token) = on_token else {
        return ffi::SQLITE_ERROR;
    };
    if text.is_null() || n_text <= 0 {
        return ffi::SQLITE_OK;
    }
    // SAFETY: FTS5 passes `n_text` readable bytes at `text` for the length of the call.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), n_text as usize) };
    let run = || {
        let (mut rc, mut base) = (ffi::SQLITE_OK, 0usize);
        for chunk in bytes.utf8_chunks() {
            let valid = chunk.valid();
            for_each_token_span(valid, |token, span| {
                // Offsets fit: the text is at most `n_text` (an int) bytes long, and a
                // folded token longer than an int would be a text longer than one.
                // SAFETY: `ctx` and the callback are FTS5's for this call; the token
                // bytes live until the callback returns.
                rc = unsafe {
                    on_token(
                        ctx,
                        0,
                        token.as_ptr().cast(),
                        token.len().min(c_int::MAX as usize) as c_int,
                        (base + span.start) as c_int,
                        (base + span.end) as c_int,
                    )
                };
                rc == ffi::SQLITE_OK
            });
            if rc != ffi::SQLITE_OK {
                break;
            }
            base += valid.len() + chunk.invalid().len();
        }
        rc
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or(ffi::SQLITE_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indexed(conn: &Connection, text: &str) -> Vec<String> {
        conn.execute("DELETE FROM t", []).unwrap();
        conn.execute("INSERT INTO t (x) VALUES (?1)", [text])
            .unwrap();
        let mut q = conn
            .prepare("SELECT term FROM v ORDER BY \"offset\"")
            .unwrap();
        q.query_map([], |r| r.get(0))
            .unwrap()
            .map(|t| t.unwrap())
            .collect()
    }

    #[test]
    fn fts5_indexes_the_core_tokens_stemmed() {
        let conn = Connection::open_in_memory().unwrap();
        register_tokenizer(&conn).unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'porter kb');
             CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');",
        )
        .unwrap();
        assert_eq!(
            indexed(&conn, "Crème brûlées 東京都 Дом"),
            ["creme", "brule", "東", "京", "都", "дом"]
        );
        // A CJK word inside a sentence matches as the phrase of its characters, and the
        // snippet marks exactly those characters.
        conn.execute("DELETE FROM t", []).unwrap();
        conn.execute("INSERT INTO t (x) VALUES ('私は東京に住んでいます')", [])
            .unwrap();
        let snippet: String = conn
            .query_row(
                "SELECT snippet(t, 0, '[', ']', '…', 20) FROM t WHERE t MATCH '\"東京\"'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(snippet, "私は[東京]に住んでいます");
    }

    #[test]
    fn a_connection_without_the_tokenizer_cannot_use_the_index() {
        let conn = Connection::open_in_memory().unwrap();
        let err = conn
            .execute_batch("CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'porter kb')")
            .unwrap_err();
        assert!(err.to_string().contains("tokenizer"), "{err}");
    }
}
