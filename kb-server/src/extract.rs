//! Request extractors whose failures come out in the API's error shape and name what was
//! wrong: the JSON body's unknown field, the query parameter that is not a number, …

use std::collections::BTreeMap;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Bodies are deserialised into types with `deny_unknown_fields`, so a
/// misspelt field is refused (422, naming it) instead of silently ignored.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let status = r.status();
    match r {
        JsonRejection::JsonDataError(e) => {
            // "Failed to deserialize the JSON body into the target type: [0]: unknown field
            // `x`, expected one of …": the serde part names the field and its position.
            let text = e.body_text();
            let detail = text
                .split_once("target type: ")
                .map(|(_, d)| d.to_owned())
                .unwrap_or(text);
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_json",
                format!("the JSON body does not fit: {detail}"),
            )
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!(
                "the body is not valid JSON: {}",
                e.body_text()
                    .split_once("JSON syntax error: ")
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or_else(|| "syntax error".into())
            ),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::from_status(status),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => ApiError::from_status(status),
        other => ApiError::new(status, "bad_request", other.body_text()),
    }
}

/// Query parameters, taken one by one so that unknown, repeated or malformed ones get a
/// message naming them. Repeating a list parameter (`tag=a&tag=b`) adds to the list.
#[derive(Debug, Default)]
pub struct Params {
    values: BTreeMap<String, Vec<String>>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            values.entry(k).or_default().push(v);
        }
        Ok(Self { values })
    }
}

/// Decodes `a=1&b=x%20y` (form encoding: `+` is a space).
fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |s: &str| -> Result<String, ApiError> {
        let s = s.replace('+', " ");
        percent_encoding::percent_decode_str(&s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| ApiError::bad_request("the query string is not valid UTF-8"))
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

impl Params {
    /// Every value of a list parameter.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        self.values.remove(name).unwrap_or_default()
    }

    /// A parameter given at most once.
    pub fn one(&mut self, name: &str) -> Result<Option<String>, ApiError> {
        match self.values.remove(name) {
            None => Ok(None),
            Some(mut v) if v.len() == 1 => Ok(v.pop()),
            Some(_) => Err(ApiError::bad_request(format!(
                "query parameter `{name}` is given more than once"
            ))),
        }
    }

    /// A number in `[0, max]`, or `default`.
    pub fn number(&mut self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        let Some(v) = self.one(name)? else {
            return Ok(default);
        };
        let n: usize = v.trim().parse().map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter `{name}` must be a whole number from 0 to {max}, got {v:?}"
            ))
        })?;
        if n > max {
            return Err(ApiError::bad_request(format!(
                "query parameter `{name}` is {n}; at most {max} is allowed"
            )));
        }
        Ok(n)
    }

    /// `true`/`false`/`1`/`0`, or an empty value (`?explain`) for true; false when absent.
    pub fn flag(&mut self, name: &str) -> Result<bool, ApiError> {
        self.flag_or(name, false)
    }

    /// [`flag`](Self::flag) with `default` when the parameter is absent.
    pub fn flag_or(&mut self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.one(name)?.as_deref() {
            None => Ok(default),
            Some("false") | Some("0") => Ok(false),
            Some("") | Some("true") | Some("1") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "query parameter `{name}` must be true or false, got {v:?}"
            ))),
        }
    }

    /// A value parsed by `parse`, whose error message is the sentence to show.
    pub fn parsed<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        match self.one(name)? {
            None => Ok(None),
            Some(v) => parse(&v)
                .map(Some)
                .map_err(|m| ApiError::bad_request(format!("query parameter `{name}`: {m}"))),
        }
    }

    /// Refuses whatever was not taken: a misspelt parameter must not be ignored silently.
    pub fn finish(self, allowed: &[&str]) -> Result<(), ApiError> {
        match self.values.keys().next() {
            None => Ok(()),
            Some(k) => Err(ApiError::bad_request(format!(
                "unknown query parameter `{k}`; this route takes: {}",
                allowed.join(", ")
            ))),
        }
    }
}
