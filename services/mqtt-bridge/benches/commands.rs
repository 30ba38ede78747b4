//! `make bench-commands`: concurrent clients POST commands to one bridge while
//! node-sim answers ACK then DONE; prints commands/s, latency percentiles and
//! the final-status counts.
//!
//! Everything runs on this machine: PostgreSQL and a private Mosquitto as
//! separate processes, the bridge, node-sim and the clients in this process.
//! Knobs (environment): BENCH_CLIENTS (32), BENCH_SECONDS (20),
//! BENCH_WARMUP_SECONDS (3).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use testkit::{env_u64, load_average};

#[path = "../tests/helpers/mod.rs"]
mod helpers;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Prints the mean of each `_seconds` histogram of the send path.
fn print_means(text: &str) {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines().filter(|l| {
        l.starts_with("command_stage_duration_seconds")
            || l.starts_with("http_request_duration_seconds")
            || l.starts_with("command_status_batch_size")
    }) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        if let Some(key) = name.strip_suffix("").and_then(|n| n.split_once("_sum")) {
            sums.insert(format!("{}{}", key.0, key.1), value);
        } else if let Some(key) = name.split_once("_count") {
            counts.insert(format!("{}{}", key.0, key.1), value);
        }
    }
    for (key, sum) in sums {
        if let Some(count) = counts.get(&key).filter(|c| **c > 0.0) {
            println!("  {key:<90} {:.2} ms", sum / count * 1e3);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    common::runtime::logging::init_with_default(common::settings::LogFormat::Text, "warn");
    let clients = env_u64("BENCH_CLIENTS", 32) as usize;
    let seconds = env_u64("BENCH_SECONDS", 20);
    let warmup = env_u64("BENCH_WARMUP_SECONDS", 3);
    println!(
        "bench-commands: {clients} clients, {warmup} s warm-up, {seconds} s measured; {} cores, load {}",
        std::thread::available_parallelism()?.get(),
        load_average()
    );

    let setup = helpers::spawn_with_sim(&[("BRIDGE_API_TOKEN", helpers::TOKEN)], 3, 20).await;
    let (url, pool, targets) = (
        setup.bridge.base.clone(),
        setup.db.pool.clone(),
        setup.targets.clone(),
    );
    let stop = setup.stop.clone();
    // Start from a clean slate: flush what an earlier run (or the build) left
    // dirty, so its writeback does not compete with this run's commits.
    sqlx::query("CHECKPOINT").execute(&pool).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let started = Instant::now();
    let measure_from = started + Duration::from_secs(warmup);
    let end = measure_from + Duration::from_secs(seconds);
    // Each target's URL and body are built once, so the load generator (which
    // shares the two cores with what it measures) spends as little as it can.
    let requests: Vec<(reqwest::Url, bytes::Bytes)> = targets
        .iter()
        .map(|(node, channel)| {
            let url = reqwest::Url::parse(&format!("{url}/bridge/nodes/{node}/commands"))
                .expect("valid url");
            (
                url,
                bytes::Bytes::from(json!({"cmd": "ping", "channel": channel}).to_string()),
            )
        })
        .collect();
    let workers: Vec<_> = (0..clients)
        .map(|k| {
            let http = http.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
                let mut i = k;
                while Instant::now() < end {
                    let (target, body) = &requests[i % requests.len()];
                    i += clients;
                    let t = Instant::now();
                    let response = http
                        .post(target.clone())
                        .header("content-type", "application/json")
                        .bearer_auth(helpers::TOKEN)
                        .body(body.clone())
                        .send()
                        .await;
                    let elapsed = t.elapsed();
                    let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
                    if t >= measure_from {
                        if status == 200 {
                            latencies.push(elapsed);
                        } else {
                            *errors.entry(status).or_default() += 1;
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
    for w in workers {
        let (l, e) = w.await?;
        latencies.extend(l);
        for (k, v) in e {
            *errors.entry(k).or_default() += v;
        }
    }
    latencies.sort();
    let rate = latencies.len() as f64 / seconds as f64;

    // Let the last responses land, then count final statuses.
    let settle = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM commands WHERE status IN ('QUEUED','SENT','ACK')",
        )
        .fetch_one(&pool)
        .await?;
        if open == 0 || settle.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM commands GROUP BY status ORDER BY status")
            .fetch_all(&pool)
            .await?;

    println!();
    println!("commands/s (200 OK):  {rate:.0}");
    println!(
        "latency p50:          {:.2} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3
    );
    println!(
        "latency p99:          {:.2} ms",
        percentile(&latencies, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "latency max:          {:.2} ms",
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("non-200 answers:      {errors:?}");
    println!("final statuses (all commands, warm-up included):");
    for (status, n) in counts {
        println!("  {status:<12} {n}");
    }
    println!("load average after:   {}", load_average());
    println!("where the time goes (mean per command):");
    print_means(&common::runtime::http::metrics_handle().render());
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}
