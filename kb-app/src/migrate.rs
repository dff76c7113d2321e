//! `kb migrate`: copies one store into another (either backend, either direction).
