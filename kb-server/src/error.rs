//! The one error shape of the API: `{"error": {"kind", "message"}}` with the status that
//! says what the caller can do about it.
//!
//! Messages are written here or come from `StorageError`'s own `Display`, which never holds
//! driver text. For `Unavailable`, `Timeout` and `Backend` even that is replaced by a fixed
//! sentence: they can name a host and port, and a caller cannot act on them anyway (the
//! full error goes to the log at warn/error level).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kb_app::AppError;
use search_hybrid::SearchError;
use serde_json::{json, Map, Value};
use storage_core::StorageError;

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `not_found`, `invalid_query`, …
    pub kind: &'static str,
    pub message: String,
    /// More fields inside the `error` object (e.g. the holder of a lost claim).
    pub extra: Map<String, Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            extra: Map::new(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
    }
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    /// The error a bare status stands for, for responses made outside the handlers
    /// (405 from the router, 413 from the body limit, 504 from the timeout).
    pub fn from_status(status: StatusCode) -> Self {
        let (kind, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such route; the API lives under /v1"),
            StatusCode::METHOD_NOT_ALLOWED => {
                ("method_not_allowed", "this route does not take that method")
            }
            StatusCode::PAYLOAD_TOO_LARGE => (
                "payload_too_large",
                "the request body is larger than the server accepts",
            ),
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => (
                "timeout",
                "the request did not finish in time; retry, or narrow it",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ),
            s if s.is_server_error() => ("internal", "internal server error"),
            _ => ("bad_request", "the request was not understood"),
        };
        Self::new(status, kind, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status.as_u16(),
            self.kind,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = Map::new();
        error.insert("kind".into(), self.kind.into());
        error.insert("message".into(), self.message.into());
        error.extend(self.extra);
        let mut resp = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        use StatusCode as S;
        match &e {
            StorageError::NotFound { .. } => Self::new(S::NOT_FOUND, "not_found", e.to_string()),
            StorageError::AlreadyExists { .. } => {
                Self::new(S::CONFLICT, "already_exists", e.to_string())
            }
            StorageError::Conflict { .. } => Self::new(S::CONFLICT, "conflict", e.to_string()),
            StorageError::InvalidInput { .. } => {
                Self::new(S::UNPROCESSABLE_ENTITY, "invalid_input", e.to_string())
            }
            StorageError::InvalidQuery { position, .. } => {
                Self::new(S::BAD_REQUEST, "invalid_query", e.to_string())
                    .with("position", *position)
            }
            StorageError::DimensionMismatch { .. } => {
                Self::new(S::UNPROCESSABLE_ENTITY, "dimension_mismatch", e.to_string())
            }
            StorageError::ModelMismatch { .. } => {
                Self::new(S::CONFLICT, "model_mismatch", e.to_string())
            }
            StorageError::Unavailable { .. } => {
                tracing::warn!(error = %e, "storage unavailable");
                Self::new(
                    S::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable right now; retry shortly",
                )
            }
            StorageError::Aborted { .. } => Self::new(
                S::SERVICE_UNAVAILABLE,
                "aborted",
                "the write was aborted by a concurrent one and nothing was written; retry it",
            ),
            StorageError::Timeout { .. } => {
                tracing::warn!(error = %e, "storage timed out");
                Self::new(
                    S::GATEWAY_TIMEOUT,
                    "timeout",
                    "the database did not answer in time; retry shortly",
                )
            }
            _ => {
                tracing::error!(error = %e, "storage error");
                Self::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Storage(s) => s.into(),
            SearchError::Embed(e) => embed_error(&e),
            other @ SearchError::ModelMismatch { .. } => {
                Self::new(StatusCode::CONFLICT, "model_mismatch", other.to_string())
            }
            other => {
                tracing::error!(error = %other, "search error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}

/// Embedding failures: the provider's own text can carry URLs, so it stays in the log.
fn embed_error(e: &embed::EmbedError) -> ApiError {
    tracing::warn!(error = %e, "embedding the query failed");
    if e.is_transient() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "embedder_unavailable",
            "the embedding model is unavailable right now; retry shortly, or search with mode=keyword",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "embedder_error",
            "the embedding model failed on this query; search with mode=keyword",
        )
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Storage(s) => s.into(),
            AppError::Search(s) => s.into(),
            AppError::Embed(e) => embed_error(&e),
            AppError::NotFound { what } => Self::not_found(what),
            AppError::Usage { message } => Self::bad_request(message),
            other => {
                tracing::error!(error = %other, "application error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal server error",
                )
            }
        }
    }
}
