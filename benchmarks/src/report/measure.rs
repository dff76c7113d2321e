//! Timing: percentiles and throughput of repeated operations, on one or many clients.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Latency percentiles of one operation and the throughput its clients reached together.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub runs: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    /// Operations per second over the wall time of the whole measurement.
    pub qps: f64,
}

impl Latency {
    pub fn of(mut times: Vec<Duration>, wall: Duration) -> Self {
        times.sort();
        Self {
            runs: times.len(),
            p50_ms: percentile(&times, 0.50),
            p95_ms: percentile(&times, 0.95),
            p99_ms: percentile(&times, 0.99),
            qps: times.len() as f64 / wall.as_secs_f64().max(1e-9),
        }
    }
}

/// The `p` quantile of sorted `times`, in milliseconds (NaN when there are none, which
/// JSON writes as null).
pub(super) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[((n - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3,
    }
}

/// Runs `op(i)` `warmup` times, then `runs` times spread over `clients` concurrent tasks.
pub(super) async fn measure<F, Fut>(clients: usize, warmup: usize, runs: usize, op: F) -> Latency
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op = Arc::new(op);
    for i in 0..warmup {
        op(i).await;
    }
    let per = runs.div_ceil(clients);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut times = Vec::with_capacity(per);
                for j in 0..per {
                    let t = Instant::now();
                    op(c * per + j).await;
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut all = Vec::with_capacity(per * clients);
    for t in tasks {
        all.extend(t.await.expect("a bench client panicked"));
    }
    Latency::of(all, start.elapsed())
}

/// [`measure`] for synchronous work on one client (the raw SQLite baseline).
pub(super) fn measure_blocking(warmup: usize, runs: usize, mut op: impl FnMut(usize)) -> Latency {
    for i in 0..warmup {
        op(i);
    }
    let start = Instant::now();
    let times = (0..runs)
        .map(|i| {
            let t = Instant::now();
            op(i);
            t.elapsed()
        })
        .collect();
    Latency::of(times, start.elapsed())
}

/// CPU time (user + system) this process has used, from `/proc/self/stat`.
pub(super) fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every mainstream architecture.
    Some(Duration::from_millis(ticks * 10))
}

/// The process's resident set and its peak since the last [`reset_peak_rss`], in MiB.
pub(super) fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak resident set (Linux `clear_refs` 5), so a later [`rss_mib`] shows
/// the peak of what ran in between.
pub(super) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
