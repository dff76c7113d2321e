//! Settings (of a KB, and global ones for admins) and collections.
//!
//! Setting keys and member ids may contain `/`, so these routes take the rest of the
//! path and percent-decode it, as entry routes do.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};
use storage_core::{validate_name, validate_setting_key, SettingScope};

use super::{decode, kb_of, require_kb, strip_kind, ApiResult};
use crate::auth::{Access, TOKEN_KEY_PREFIX};
use crate::error::ApiError;
use crate::extract::{ApiJson, Params};
use crate::state::AppState;

/// The percent-decoded path after `/v1/kbs/{kb}/{section}/` (`None` for the section
/// itself).
fn rest_after(uri: &OriginalUri, section: &str) -> ApiResult<Option<String>> {
    let path = uri.0.path();
    let mut parts = path.splitn(5, '/');
    let (Some(""), Some("v1"), Some("kbs"), Some(_kb)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ApiError::from_status(StatusCode::NOT_FOUND));
    };
    let rest = parts.next().unwrap_or("");
    match rest.strip_prefix(section) {
        Some("") | Some("/") => Ok(None),
        Some(r) if r.starts_with('/') => Ok(Some(decode(&r[1..])?)),
        _ => Err(ApiError::from_status(StatusCode::NOT_FOUND)),
    }
}

/// The percent-decoded path after `/v1/settings/`.
fn global_key(uri: &OriginalUri) -> ApiResult<String> {
    let raw = uri
        .0
        .path()
        .strip_prefix("/v1/settings/")
        .ok_or_else(|| ApiError::from_status(StatusCode::NOT_FOUND))?;
    decode(raw)
}

// ------------------------------------------------------------------ settings

/// A setting's new value.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingInput {
    pub value: Value,
}

fn check_key(key: &str) -> ApiResult<()> {
    validate_setting_key(key).map_err(|e| ApiError::unprocessable(strip_kind(&e)))
}

/// Token records live in the global settings; the settings routes never show or touch
/// them (`kb token` does), so a leaked admin token cannot mint tokens through them.
fn check_not_token(key: &str) -> ApiResult<()> {
    if key.starts_with(TOKEN_KEY_PREFIX) {
        return Err(ApiError::forbidden(format!(
            "keys under {TOKEN_KEY_PREFIX:?} hold access tokens; manage them with `kb token`"
        )));
    }
    Ok(())
}

fn settings_json(settings: Vec<(String, Value)>) -> Value {
    let map: serde_json::Map<String, Value> = settings
        .into_iter()
        .filter(|(k, _)| !k.starts_with(TOKEN_KEY_PREFIX))
        .collect();
    Value::Object(map)
}

async fn get_one(st: &AppState, scope: &SettingScope, key: &str) -> ApiResult<Response> {
    check_key(key)?;
    match st.store.get_setting(scope, key).await? {
        Some(value) => Ok(Json(json!({ "key": key, "value": value })).into_response()),
        None => Err(ApiError::not_found(format!("setting {key:?}"))),
    }
}

async fn put_one(
    st: &AppState,
    scope: &SettingScope,
    key: &str,
    value: Value,
) -> ApiResult<Response> {
    check_key(key)?;
    st.store.set_setting(scope, key, &value).await?;
    Ok(Json(json!({ "key": key, "value": value })).into_response())
}

async fn delete_one(st: &AppState, scope: &SettingScope, key: &str) -> ApiResult<Response> {
    check_key(key)?;
    if !st.store.delete_setting(scope, key).await? {
        return Err(ApiError::not_found(format!("setting {key:?}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/kbs/{kb}/settings` (all) and `GET /v1/kbs/{kb}/settings/{key}`.
pub async fn kb_settings_get(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let scope = SettingScope::Kb(kb.clone());
    match rest_after(&uri, "settings")? {
        None => {
            let all = st.store.list_settings(&scope).await?;
            Ok(Json(json!({ "kb": kb, "settings": settings_json(all) })).into_response())
        }
        Some(key) => get_one(&st, &scope, &key).await,
    }
}

/// `PUT /v1/kbs/{kb}/settings/{key}` with `{"value": …}`.
pub async fn kb_settings_put(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    ApiJson(input): ApiJson<SettingInput>,
) -> ApiResult<Response> {
    let kb = kb_of(&uri)?;
    access.check_write(&kb)?;
    let key = rest_after(&uri, "settings")?
        .ok_or_else(|| ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED))?;
    put_one(&st, &SettingScope::Kb(kb), &key, input.value).await
}

/// `DELETE /v1/kbs/{kb}/settings/{key}`.
pub async fn kb_settings_delete(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
) -> ApiResult<Response> {
    let kb = kb_of(&uri)?;
    access.check_write(&kb)?;
    let key = rest_after(&uri, "settings")?
        .ok_or_else(|| ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED))?;
    delete_one(&st, &SettingScope::Kb(kb), &key).await
}

/// `GET /v1/settings`: the global settings (admin), without token records.
pub async fn global_settings(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    access.check_admin()?;
    let all = st.store.list_settings(&SettingScope::Global).await?;
    Ok(Json(json!({ "settings": settings_json(all) })).into_response())
}

/// `GET /v1/settings/{key}` (admin).
pub async fn global_setting_get(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    access.check_admin()?;
    let key = global_key(&uri)?;
    check_not_token(&key)?;
    get_one(&st, &SettingScope::Global, &key).await
}

/// `PUT /v1/settings/{key}` (admin).
pub async fn global_setting_put(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    ApiJson(input): ApiJson<SettingInput>,
) -> ApiResult<Response> {
    access.check_admin()?;
    let key = global_key(&uri)?;
    check_not_token(&key)?;
    put_one(&st, &SettingScope::Global, &key, input.value).await
}

/// `DELETE /v1/settings/{key}` (admin).
pub async fn global_setting_delete(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
) -> ApiResult<Response> {
    access.check_admin()?;
    let key = global_key(&uri)?;
    check_not_token(&key)?;
    delete_one(&st, &SettingScope::Global, &key).await
}

// ------------------------------------------------------------------ collections

/// A collection to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// What a path below `/v1/kbs/{kb}/collections/` names.
enum CollectionPath {
    Collection(String),
    Member(String, String),
}

fn collection_path(uri: &OriginalUri) -> ApiResult<CollectionPath> {
    let rest = rest_after(uri, "collections")?
        .ok_or_else(|| ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED))?;
    let path = match rest.split_once("/entries/") {
        Some((name, id)) if !id.is_empty() => CollectionPath::Member(name.into(), id.into()),
        _ if rest.contains('/') => return Err(ApiError::from_status(StatusCode::NOT_FOUND)),
        _ => CollectionPath::Collection(rest),
    };
    let name = match &path {
        CollectionPath::Collection(n) | CollectionPath::Member(n, _) => n,
    };
    validate_name("collection name", name).map_err(|e| ApiError::bad_request(strip_kind(&e)))?;
    Ok(path)
}

/// `GET /v1/kbs/{kb}/collections`.
pub async fn collections_list(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let collections = st.store.list_collections(&kb).await?;
    Ok(Json(json!({ "kb": kb, "collections": collections })).into_response())
}

/// `POST /v1/kbs/{kb}/collections` with `{"name", "description"}`: 201, or 409 when the
/// name is taken.
pub async fn collection_create(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    ApiJson(input): ApiJson<CollectionInput>,
) -> ApiResult<Response> {
    let kb = kb_of(&uri)?;
    access.check_write(&kb)?;
    validate_name("collection name", &input.name)
        .map_err(|e| ApiError::unprocessable(strip_kind(&e)))?;
    let c = st
        .store
        .create_collection(&kb, &input.name, &input.description)
        .await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

/// `GET /v1/kbs/{kb}/collections/{name}`: the collection and its member ids in order.
pub async fn collection_get(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    params: Params,
) -> ApiResult<Response> {
    params.finish(&[])?;
    let kb = kb_of(&uri)?;
    require_kb(&st, &access, &kb).await?;
    let CollectionPath::Collection(name) = collection_path(&uri)? else {
        return Err(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED));
    };
    let found = st
        .store
        .list_collections(&kb)
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("collection {name} of {kb}")))?;
    let entries = st.store.collection_entries(&kb, &name).await?;
    let mut v = serde_json::to_value(found).expect("collections serialise");
    v["entries"] = json!(entries);
    Ok(Json(v).into_response())
}

/// `PUT /v1/kbs/{kb}/collections/{name}/entries/{id}?position=N`: adds (or moves) a
/// member; without `position` it goes last.
pub async fn collection_put(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
    mut params: Params,
) -> ApiResult<Response> {
    let position = params.parsed("position", |s| {
        s.parse::<usize>()
            .map_err(|_| format!("{s:?} is not a position (0 is first)"))
    })?;
    params.finish(&["position"])?;
    let kb = kb_of(&uri)?;
    access.check_write(&kb)?;
    let CollectionPath::Member(name, id) = collection_path(&uri)? else {
        return Err(ApiError::from_status(StatusCode::METHOD_NOT_ALLOWED));
    };
    st.store
        .add_to_collection(&kb, &name, &id, position)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1/kbs/{kb}/collections/{name}` (members are kept as entries) or
/// `DELETE …/collections/{name}/entries/{id}` (removes one member).
pub async fn collection_delete(
    State(st): State<AppState>,
    Extension(access): Extension<Access>,
    uri: OriginalUri,
) -> ApiResult<Response> {
    let kb = kb_of(&uri)?;
    access.check_write(&kb)?;
    let removed = match collection_path(&uri)? {
        CollectionPath::Collection(name) => st.store.delete_collection(&kb, &name).await?,
        CollectionPath::Member(name, id) => {
            st.store.remove_from_collection(&kb, &name, &id).await?
        }
    };
    if !removed {
        return Err(ApiError::not_found("collection or member".to_owned()));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
