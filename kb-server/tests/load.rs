//! `kb serve` under load, over real TCP, on each backend: 100 clients for a bounded time
//! (`KB_LOAD_SECS`, default 8), 80 % searches (keyword and hybrid) and 20 % upserts, with
//! the embedding worker running. No 5xx and no unexpected status; the pool never above
//! its maximum (read from `/metrics` while the load runs); every acknowledged upsert is
//! there afterwards with what was written; the queue drains. Prints throughput and
//! p50/p99 per route (`--nocapture`). And two servers started at once on one Postgres.

#![allow(clippy::unwrap_used)] // Test code: a failed unwrap is a failed test, with its location.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod common;
use common::*;

const CLIENTS: usize = 100;
const WORDS: &[&str] = &[
    "river", "stone", "lantern", "harvest", "copper", "meadow", "signal", "orbit", "pepper",
    "glacier", "violin", "compass", "ember", "thistle", "harbor", "quartz",
];

/// What every client saw.
#[derive(Default)]
struct Seen {
    /// Latency of each answered request, by route.
    latency: BTreeMap<&'static str, Vec<Duration>>,
    /// Requests answered with a status the test does not expect, with the body.
    unexpected: Vec<String>,
    /// Acknowledged writes: id → body written.
    acked: BTreeMap<String, String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One metric's value from the Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn client_loop(
    http: reqwest::Client,
    base: String,
    client: usize,
    until: Instant,
    seen: Arc<Mutex<Seen>>,
) {
    let mut n = 0usize;
    while Instant::now() < until {
        n += 1;
        let word = WORDS[(client * 7 + n) % WORDS.len()];
        let started = Instant::now();
        let (route, resp, acked) = match n % 10 {
            // 20 % writes: a new entry each time, so every acknowledgement is checkable.
            0 | 5 => {
                let id = format!("c{client}/n{n}");
                let body = format!("{word} note {n} from client {client}");
                let r = http
                    .put(format!("{base}/v1/kbs/load/entries/{id}"))
                    .json(&json!({"title": format!("{word} {n}"), "body": body, "tags": [word]}))
                    .send()
                    .await;
                ("PUT entry", r, Some((id, body)))
            }
            k => {
                let mode = if k % 2 == 0 { "keyword" } else { "hybrid" };
                let other = WORDS[(client + n) % WORDS.len()];
                let r = http
                    .get(format!("{base}/v1/kbs/load/search"))
                    .query(&[
                        ("q", format!("{word} {other}")),
                        ("mode", mode.into()),
                        ("any", "true".into()),
                    ])
                    .send()
                    .await;
                (
                    if mode == "keyword" {
                        "search keyword"
                    } else {
                        "search hybrid"
                    },
                    r,
                    None,
                )
            }
        };
        let took = started.elapsed();
        let mut seen = seen.lock().unwrap();
        match resp {
            Ok(r) if r.status().is_success() => {
                seen.latency.entry(route).or_default().push(took);
                if let Some((id, body)) = acked {
                    seen.acked.insert(id, body);
                }
            }
            Ok(r) => seen.unexpected.push(format!("{route}: {}", r.status())),
            Err(e) => seen.unexpected.push(format!("{route}: {e}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_search_and_write_with_no_errors_and_nothing_lost() {
    let secs: u64 = std::env::var("KB_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let mut report = String::new();
    for b in backends("load") {
        let n = b.name;
        let served = serve(&b).await;
        let base = served.base.clone();
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS)
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap();
        let r = http
            .post(format!("{base}/v1/kbs"))
            .json(&json!({"name": "load"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{n}");
        let seed: Vec<Value> = (0..300)
            .map(|i| {
                let w = WORDS[i % WORDS.len()];
                json!({"id": format!("seed/{i}"), "title": format!("{w} {i}"), "body": format!("{w} and {} seed {i}", WORDS[(i * 3) % WORDS.len()])})
            })
            .collect();
        let r = http
            .post(format!("{base}/v1/kbs/load/entries"))
            .json(&seed)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{n}");

        // The pool as /metrics shows it, sampled while the load runs.
        let until = Instant::now() + Duration::from_secs(secs);
        let sampler = tokio::spawn({
            let (http, base) = (http.clone(), base.clone());
            async move {
                let mut peak = (0.0f64, 0.0f64, 0usize);
                while Instant::now() < until {
                    if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
                        let text = r.text().await.unwrap_or_default();
                        let size = metric(&text, "kb_pool_connections").unwrap_or(0.0);
                        let max = metric(&text, "kb_pool_max_connections").unwrap_or(0.0);
                        assert!(
                            size <= max,
                            "the pool has {size} connections, above its maximum {max}"
                        );
                        peak = (peak.0.max(size), max, peak.2 + 1);
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                peak
            }
        });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let started = Instant::now();
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                tokio::spawn(client_loop(
                    http.clone(),
                    base.clone(),
                    c,
                    until,
                    seen.clone(),
                ))
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        let wall = started.elapsed();
        let (peak, max, samples) = sampler.await.unwrap();
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        assert!(
            seen.unexpected.is_empty(),
            "{n}: {} unexpected answers, e.g. {:?}",
            seen.unexpected.len(),
            &seen.unexpected[..seen.unexpected.len().min(5)]
        );
        assert!(samples > 0 && max > 0.0, "{n}: /metrics was never read");

        // Every acknowledged write is there, as written, and the worker embeds them.
        assert!(!seen.acked.is_empty(), "{n}: no write was acknowledged");
        check_acknowledged(&http, &base, "load", &seen.acked).await;
        let q = queue_drains(&http, &base, Duration::from_secs(120)).await;
        assert_eq!(q["failed"], 0, "{n}: {q}");

        let total: usize = seen.latency.values().map(Vec::len).sum();
        report += &format!(
            "\n{n}: {CLIENTS} clients, {:.1} s, {total} requests, {:.0} req/s, {} writes acknowledged, pool peak {peak} of {max}\n",
            wall.as_secs_f64(),
            total as f64 / wall.as_secs_f64(),
            seen.acked.len()
        );
        for (route, mut lat) in seen.latency {
            lat.sort();
            report += &format!(
                "  {route:<16} {:>6} req {:>7.0}/s  p50 {:>7.1} ms  p99 {:>7.1} ms\n",
                lat.len(),
                lat.len() as f64 / wall.as_secs_f64(),
                percentile(&lat, 0.5).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3,
            );
        }
        let _ = served.stop.send(());
        served.server.await.unwrap().unwrap();
    }
    println!("{report}");
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_started_at_once_on_one_postgres_share_it() {
    let b = backends("twoservers").pop().unwrap();
    assert_eq!(b.name, "postgres");
    // Two servers on one fresh schema, opened at the same moment: the migration runs
    // under an advisory lock, so both come up.
    let (one, two) = tokio::join!(serve(&b), serve(&b));
    let http = reqwest::Client::new();
    let mut versions = Vec::new();
    for s in [&one, &two] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = http.get(format!("{}/readyz", s.base)).send().await.unwrap();
            if r.status() == 200 {
                let v: Value = r.json().await.unwrap();
                versions.push(v["schema_version"].clone());
                break;
            }
            assert!(Instant::now() < deadline, "a server never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(versions[0], versions[1]);
    // A write through one is read through the other, and found by its search.
    let r = http
        .post(format!("{}/v1/kbs", one.base))
        .json(&json!({"name": "shared"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .put(format!("{}/v1/kbs/shared/entries/hello", one.base))
        .json(&json!({"title": "Hello", "body": "written through the first server"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = http
        .get(format!("{}/v1/kbs/shared/entries/hello", two.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["body"], "written through the first server");
    let r: Value = http
        .get(format!(
            "{}/v1/kbs/shared/search?q=first&mode=keyword",
            two.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["hits"][0]["id"], "hello", "{r}");
    for s in [one, two] {
        let _ = s.stop.send(());
        s.server.await.unwrap().unwrap();
    }
}
