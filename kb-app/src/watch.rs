//! `kb sync --watch`.
