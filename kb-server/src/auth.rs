//! Bearer tokens and what each may touch.
//!
//! A token is `kb_` + 64 hex characters (32 random bytes from the OS). Only its BLAKE3
//! hash is stored, in the store's **global** settings under `kb.tokens.<first 16 hex of
//! the hash>`, so every server process on one database sees the same tokens and a
//! revocation takes effect on the next request. A presented token is hashed, its record
//! fetched by the hash prefix, and the full hashes compared in constant time (`subtle`).
//!
//! Scopes: `admin` (everything), or `read` / `read_write` on a list of KBs. A KB outside a
//! token's list does not exist for it: every route answers 404, as for a missing KB, so
//! a token cannot learn which KBs exist. Writing with a read token is 403 on its own KBs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage_core::{SettingScope, Store};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::error::ApiError;
use crate::state::AppState;

/// Settings key prefix of token records.
pub const TOKEN_KEY_PREFIX: &str = "kb.tokens.";
const TOKEN_PREFIX: &str = "kb_";
/// How long "are any tokens configured?" is cached while access is open.
const OPEN_CHECK_TTL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Admin,
    Read,
    ReadWrite,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Admin => "admin",
            Scope::Read => "read",
            Scope::ReadWrite => "read_write",
        })
    }
}

/// What is stored for a token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRecord {
    /// BLAKE3 of the token, hex.
    pub hash: String,
    pub scope: Scope,
    /// The KBs a `read`/`read_write` token may touch (empty for `admin`).
    #[serde(default)]
    pub kbs: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub name: String,
}

impl TokenRecord {
    /// The id `kb token list` shows and `kb token revoke` takes: the hash prefix.
    pub fn id(&self) -> &str {
        &self.hash[..16.min(self.hash.len())]
    }
}

fn hash_token(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// Creates a token and stores its hash. Returns the record and the token, which exists
/// nowhere else: show it once.
pub async fn create_token(
    store: &dyn Store,
    scope: Scope,
    kbs: &[String],
    name: &str,
) -> storage_core::Result<(TokenRecord, String)> {
    if scope != Scope::Admin && kbs.is_empty() {
        return Err(storage_core::StorageError::invalid_input(
            "a read or read-write token needs at least one knowledge base (--kb NAME)",
        ));
    }
    for kb in kbs {
        storage_core::validate_name("knowledge base name", kb)?;
    }
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let token = format!(
        "{TOKEN_PREFIX}{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let record = TokenRecord {
        hash: hash_token(&token),
        scope,
        kbs: if scope == Scope::Admin {
            Vec::new()
        } else {
            kbs.to_vec()
        },
        created_at: Utc::now(),
        name: name.to_owned(),
    };
    let value = serde_json::to_value(&record).expect("token records serialise");
    store
        .set_setting(
            &SettingScope::Global,
            &format!("{TOKEN_KEY_PREFIX}{}", record.id()),
            &value,
        )
        .await?;
    Ok((record, token))
}

/// Every stored token record, ordered by id. Records that do not parse are skipped.
pub async fn list_tokens(store: &dyn Store) -> storage_core::Result<Vec<TokenRecord>> {
    let settings = store.list_settings(&SettingScope::Global).await?;
    Ok(settings
        .into_iter()
        .filter(|(k, _)| k.starts_with(TOKEN_KEY_PREFIX))
        .filter_map(|(_, v)| serde_json::from_value(v).ok())
        .collect())
}

/// Deletes a token by id (its hash prefix). `Ok(false)` when there is none.
pub async fn revoke_token(store: &dyn Store, id: &str) -> storage_core::Result<bool> {
    if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(storage_core::StorageError::invalid_input(format!(
            "{id:?} is not a token id: ids are the 16 hex characters `kb token list` shows"
        )));
    }
    store
        .delete_setting(
            &SettingScope::Global,
            &format!("{TOKEN_KEY_PREFIX}{}", id.to_ascii_lowercase()),
        )
        .await
}

/// Looks a presented token up. `None` when it is not (or no longer) valid.
async fn verify(store: &dyn Store, token: &str) -> Result<Option<TokenRecord>, ApiError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 256 {
        return Ok(None);
    }
    let hash = hash_token(token);
    let key = format!("{TOKEN_KEY_PREFIX}{}", &hash[..16]);
    let Some(value) = store.get_setting(&SettingScope::Global, &key).await? else {
        return Ok(None);
    };
    let Ok(record) = serde_json::from_value::<TokenRecord>(value) else {
        tracing::warn!(
            token_id = &hash[..16],
            "a stored token record does not parse"
        );
        return Ok(None);
    };
    let equal: bool = record.hash.as_bytes().ct_eq(hash.as_bytes()).into();
    Ok(equal.then_some(record))
}

/// Who is asking, as the handlers see it.
#[derive(Debug, Clone)]
pub enum Access {
    /// No tokens are configured and the server listens on loopback, or `--no-auth`.
    Open,
    Token(Arc<TokenRecord>),
}

impl Access {
    pub fn is_admin(&self) -> bool {
        match self {
            Access::Open => true,
            Access::Token(t) => t.scope == Scope::Admin,
        }
    }
    pub fn can_read(&self, kb: &str) -> bool {
        match self {
            Access::Open => true,
            Access::Token(t) => t.scope == Scope::Admin || t.kbs.iter().any(|k| k == kb),
        }
    }
    pub fn can_write(&self, kb: &str) -> bool {
        match self {
            Access::Open => true,
            Access::Token(t) => {
                t.scope == Scope::Admin || (t.scope == Scope::ReadWrite && self.can_read(kb))
            }
        }
    }
    /// The KBs this caller may read, `None` meaning all of them.
    pub fn readable(&self) -> Option<&[String]> {
        match self {
            Access::Token(t) if t.scope != Scope::Admin => Some(&t.kbs),
            _ => None,
        }
    }

    /// 404 for a KB the caller may not read: to it, the KB does not exist.
    pub fn check_read(&self, kb: &str) -> Result<(), ApiError> {
        if self.can_read(kb) {
            Ok(())
        } else {
            Err(ApiError::not_found(format!("knowledge base {kb}")))
        }
    }
    /// 404 for a KB the caller may not read, 403 for one it may only read.
    pub fn check_write(&self, kb: &str) -> Result<(), ApiError> {
        self.check_read(kb)?;
        if self.can_write(kb) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this token may only read knowledge base {kb}"
            )))
        }
    }
    pub fn check_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an admin token"))
        }
    }
}

/// Whether authentication is required, decided per request so that a token created
/// while the server runs closes open access within [`OPEN_CHECK_TTL`].
#[derive(Debug)]
pub struct AuthPolicy {
    /// `--no-auth`: every request is [`Access::Open`].
    pub disabled: bool,
    cached: Mutex<Option<(Instant, bool)>>,
}

impl AuthPolicy {
    pub fn new(disabled: bool) -> Self {
        Self {
            disabled,
            cached: Mutex::new(None),
        }
    }

    async fn tokens_configured(&self, store: &dyn Store) -> Result<bool, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, yes)) = *cached {
            // Once tokens exist, stay closed: revoking the last token needs a restart to
            // reopen access, which is the safe direction.
            if yes || at.elapsed() < OPEN_CHECK_TTL {
                return Ok(yes);
            }
        }
        let yes = !list_tokens(store).await?.is_empty();
        *cached = Some((Instant::now(), yes));
        Ok(yes)
    }
}

/// Middleware: resolves the caller's [`Access`] and puts it in the request's extensions;
/// 401 for a missing or invalid token when tokens are required.
/// 429 for a caller with more than [`InFlight`]'s limit of requests running.
pub async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let access = resolve(&state, req.headers()).await?;
    let caller = match &access {
        Access::Open => "open".to_owned(),
        Access::Token(t) => t.id().to_owned(),
    };
    let _slot = state.in_flight.enter(caller)?;
    req.extensions_mut().insert(access);
    Ok(next.run(req).await)
}

/// Requests running per caller (token, or the open caller), so one client cannot take
/// every connection of the pool from the others: past the limit it gets 429 with
/// `Retry-After`. A counter map rather than a rate limiter: what runs out under load is
/// database connections, which concurrency measures and a rate does not.
#[derive(Debug)]
pub struct InFlight {
    limit: usize,
    running: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

/// Default of [`InFlight`]'s limit (`kb serve --max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

impl InFlight {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            running: Default::default(),
        }
    }

    fn enter(self: &Arc<Self>, caller: String) -> Result<Slot, ApiError> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let n = running.entry(caller.clone()).or_default();
        if *n >= self.limit {
            return Err(ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                format!(
                    "this caller already has {} requests running; retry when one finishes",
                    self.limit
                ),
            ));
        }
        *n += 1;
        Ok(Slot {
            owner: self.clone(),
            caller,
        })
    }
}

/// One running request; leaving frees its place.
struct Slot {
    owner: Arc<InFlight>,
    caller: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.owner.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = running.get_mut(&self.caller) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.caller);
            }
        }
    }
}

async fn resolve(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Access, ApiError> {
    let policy = &state.auth;
    if policy.disabled || !policy.tokens_configured(state.store.as_ref()).await? {
        return Ok(Access::Open);
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "this server needs a token: send `Authorization: Bearer <token>` (`kb token create` makes one)",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
        })?;
    match verify(state.store.as_ref(), token).await? {
        Some(record) => Ok(Access::Token(Arc::new(record))),
        None => Err(ApiError::unauthorized(
            "the token is not valid: it was revoked, or mistyped",
        )),
    }
}
