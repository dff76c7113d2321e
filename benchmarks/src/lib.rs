//! Benchmarks live in `benches/backends.rs`; run them with `cargo xtask bench`.
