//! `make bench-ingest`: node-sim publishes telemetry from many nodes across
//! three local brokers at a set rate; the release history-logger, a separate
//! process, stores it. The brokers are private Mosquittos with the project's
//! broker settings (`deploy/mosquitto.conf`: a deep per-client queue), not the
//! machine's stock 1883, whose 1,000-message client queue would drop
//! readings under a load the production brokers take. Prints messages published,
//! rows landed, lost and duplicated, publish→commit latency, the sustained
//! rate, the logger's peak memory, CPU per process and the ratio to
//! PostgreSQL's own `COPY` of the same rows.
//!
//! Judges its acceptance and exits non-zero on a miss, naming each: a
//! sustained end-to-end rate ≥ BENCH_GOAL_RATE (20000 msg/s), 0 readings lost,
//! 0 rows beyond the readings made (a duplicate delivery stored twice), 0
//! readings dropped from full node buffers, publish→commit p99 ≤
//! BENCH_GOAL_P99_MS (2000) and the logger's peak RSS ≤ BENCH_GOAL_RSS_MB
//! (256). Readings are counted from what the nodes made
//! (`sim_telemetry_generated_total`), not from publishes, so a buffer replay
//! after a reconnect is shown as a replay, not counted twice. The sustained
//! rate subtracts the backlog the warm-up left (readings made but not yet
//! stored when the window opens).
//!
//! Knobs (environment): BENCH_RATE (21000 msg/s offered), BENCH_SECONDS (60),
//! BENCH_INTERVAL_MS (1250, each node's telemetry period), BENCH_PROBES (8 soil
//! probes per node besides its kind's sensors), BENCH_NODES (default: enough
//! for BENCH_RATE), BENCH_WARMUP_SECONDS (10), BENCH_LOGGER_LOG (the logger's
//! RUST_LOG, `warn`); the logger gets TELEMETRY_BATCH_SIZE /
//! TELEMETRY_FLUSH_MS / PG_MAX_CONNECTIONS from the environment if set.
//! BENCH_GOAL_RATE, BENCH_GOAL_P99_MS and BENCH_GOAL_RSS_MB move the goals
//! (a deliberately missed run: BENCH_RATE=3000 BENCH_SECONDS=15 is far below
//! the 20000 msg/s goal and exits non-zero).
//!
//! Long (over 400 lines) because it is one benchmark's steps in order:
//! brokers, nodes, the logger process, the run, the drain and the verdict.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::settings::{FromEnv, Settings};
use deadpool_redis::redis;
use futures::StreamExt;
use node_sim::SimSettings;
use node_sim::layout::layout;
use testkit::{TestBroker, TestDb, env_u64, free_port, load_average, redis_url};
use tokio_util::sync::CancellationToken;

const ZONES: usize = 30;
/// The end-to-end rate the logger must sustain (issue 3's acceptance);
/// BENCH_GOAL_RATE overrides it.
const GOAL_RATE: u64 = 20_000;
/// Publish→commit p99 goal, ms (BENCH_GOAL_P99_MS).
const GOAL_P99_MS: u64 = 2_000;
/// The logger's peak resident memory goal, MB (BENCH_GOAL_RSS_MB).
const GOAL_RSS_MB: u64 = 256;
/// How long the queue may take to drain after publishing stops.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// Sensor channels (telemetry messages per period) of the first `nodes`
/// nodes with `probes` soil probes each.
fn sensors_of(nodes: usize, probes: usize) -> usize {
    let sim = SimSettings {
        zones: ZONES,
        nodes,
        probes,
        ..SimSettings::default()
    };
    layout(&sim)
        .nodes
        .iter()
        .map(|n| {
            n.channels()
                .iter()
                .filter(|c| c.metric_type.is_some())
                .count()
        })
        .sum()
}

/// A field of `/proc/PID/status` in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU ticks (user + system) per process group: this process (node-sim and
/// the bench), the logger, PostgreSQL, Redis, Mosquitto.
fn cpu_ticks(logger: u32) -> BTreeMap<String, u64> {
    let me = std::process::id();
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // comm may hold spaces; the fields after it follow the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        let group = if pid == me {
            "node-sim + bench (this process)"
        } else if pid == logger {
            "history-logger"
        } else if comm == "postgres" {
            "postgres (all backends)"
        } else if comm.starts_with("redis-server") {
            "redis"
        } else if comm == "mosquitto" {
            "mosquitto (3 brokers)"
        } else {
            continue;
        };
        *out.entry(group.to_owned()).or_default() += ticks;
    }
    out
}

/// The history-logger, a process of its own so its memory can be read.
struct Logger {
    child: Child,
    port: u16,
}

impl Logger {
    fn start(
        broker: &TestBroker,
        db_url: &str,
        stream: &str,
        dead_letter: &str,
        instance: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port();
        let binary = PathBuf::from(env!("CARGO_BIN_EXE_history-logger"));
        let log = std::fs::File::create(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/bench-ingest-history-logger.log"),
        )?;
        let mut command = Command::new(&binary);
        command
            .env("DATABASE_URL", db_url)
            .env("REDIS_URL", redis_url())
            .env("MQTT_HOST", "127.0.0.1")
            .env("MQTT_PORT", broker.port.to_string())
            .env("MQTT_USER", testkit::backend_login().user)
            .env("MQTT_PASS", testkit::backend_login().pass)
            .env("MQTT_BROKER_ID", "mqtt1")
            .env("HTTP_PORT", port.to_string())
            .env("HISTORY_STREAM", stream)
            .env("HISTORY_DEAD_LETTER_KEY", dead_letter)
            .env("INSTANCE_ID", instance)
            // A group of its own: no other history-logger on these brokers
            // (a `make up`, a persistent session of an earlier run) takes a share.
            .env("MQTT_SHARE_GROUP", instance)
            // Clean sessions: a run leaves no session behind that the brokers
            // would keep filling with the next run's telemetry.
            .env("HISTORY_SESSION_EXPIRY_SEC", "0")
            .env(
                "RUST_LOG",
                std::env::var("BENCH_LOGGER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(log.try_clone()?)
            .stderr(log);
        for knob in [
            "TELEMETRY_BATCH_SIZE",
            "TELEMETRY_FLUSH_MS",
            "PG_MAX_CONNECTIONS",
        ] {
            if let Ok(v) = std::env::var(knob) {
                command.env(knob, v);
            }
        }
        let child = command.spawn().map_err(|e| {
            anyhow::anyhow!(
                "cannot run {} (build it with `cargo build --release -p history-logger`): {e}",
                binary.display()
            )
        })?;
        Ok(Logger { child, port })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn metrics(&self, http: &reqwest::Client) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.port);
        match http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/health", self.port);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "history-logger exited: {status} (see target/bench-ingest-history-logger.log)"
                );
            }
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "history-logger not healthy after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        // Only reached when stop() was not: the bench failed half-way.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    common::runtime::logging::init_with_default(common::settings::LogFormat::Text, "warn");
    // node-sim's counters are read from this process's recorder.
    let recorder = common::runtime::http::metrics_handle();
    // Offered: 5 % above the 20,000 msg/s the logger must sustain (issue 3),
    // since a node's timer only ever runs late, never early.
    let rate = env_u64("BENCH_RATE", 21_000) as usize;
    let seconds = env_u64("BENCH_SECONDS", 60);
    let warmup = env_u64("BENCH_WARMUP_SECONDS", 10);
    let goal_rate = env_u64("BENCH_GOAL_RATE", GOAL_RATE);
    let goal_p99 = env_u64("BENCH_GOAL_P99_MS", GOAL_P99_MS) as f64 / 1000.0;
    let goal_rss_mb = env_u64("BENCH_GOAL_RSS_MB", GOAL_RSS_MB);
    // A (node, channel) may speak at most once per second of `ts` (whole
    // seconds, part of the primary key): a period above 1 s with room for
    // timer jitter keeps every reading's key distinct.
    let interval_ms = env_u64("BENCH_INTERVAL_MS", 1_250).max(1_010);
    let probes = env_u64("BENCH_PROBES", 8) as usize;
    let nodes = match env_u64("BENCH_NODES", 0) as usize {
        0 => {
            let mut n = rate * interval_ms as usize / 1000 / (2 + probes);
            while sensors_of(n, probes) * 1000 / (interval_ms as usize) < rate {
                n += 10;
            }
            n
        }
        n => n,
    };
    let per_period = sensors_of(nodes, probes);
    let nominal = per_period as f64 * 1000.0 / interval_ms as f64;
    println!(
        "bench-ingest: {nodes} nodes × {:.2} sensor channels every {interval_ms} ms = {nominal:.0} msg/s nominal \
         (target {rate}), {warmup} s warm-up, {seconds} s measured, 3 brokers; {} cores, load {}",
        per_period as f64 / nodes as f64,
        std::thread::available_parallelism()?.get(),
        load_average()
    );

    let db = TestDb::new().await;
    let brokers = [
        TestBroker::start().await,
        TestBroker::start().await,
        TestBroker::start().await,
    ];
    let urls: Vec<String> = brokers.iter().map(TestBroker::url).collect();
    println!("brokers: {}", urls.join(", "));
    for (i, url) in urls.iter().enumerate() {
        let id = format!("mqtt{}", i + 1);
        sqlx::query("INSERT INTO brokers (id, url) VALUES ($1, $2)")
            .bind(id)
            .bind(url)
            .execute(&db.pool)
            .await?;
    }
    let mut sim = SimSettings {
        greenhouse: "gh-bench".into(),
        zones: ZONES,
        nodes,
        telemetry_interval_ms: interval_ms,
        // Heartbeats are not what is measured; one per node per 10 minutes.
        heartbeat_interval_ms: 600_000,
        broker_urls: Some(urls.join(",")),
        probes,
        // A node's readings leave together, in as few segments as the
        // kernel can gather them (Nagle, as on the ESP32's lwIP stack).
        tcp_nodelay: false,
        ..SimSettings::default()
    };
    sim.validate()?;
    node_sim::seed::seed(&db.pool, &layout(&sim), &sim.greenhouse).await?;

    let run = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let stream = format!("{run}:uplink");
    let dead_letter = format!("{run}:dead-letter");
    let http = reqwest::Client::new();
    let mut logger = Logger::start(&brokers[0], &db.url, &stream, &dead_letter, &run)?;
    logger.wait_healthy(&http).await?;
    println!(
        "history-logger pid {} up (port {}), RSS {} kB",
        logger.pid(),
        logger.port,
        status_kb(logger.pid(), "VmRSS:")
    );

    // Start from a clean slate: flush what an earlier run (or the build)
    // left dirty, so its writeback does not compete with this run's commits.
    sqlx::query("CHECKPOINT").execute(&db.pool).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let settings = Settings::from_vars(testkit::env_vars(&[
        ("HTTP_PORT", "0"),
        ("MQTT_HOST", "127.0.0.1"),
        ("MQTT_PORT", &brokers[0].port.to_string()),
        ("MQTT_USER", &testkit::backend_login().user),
        ("MQTT_PASS", &testkit::backend_login().pass),
    ]))?;
    sim.seed_db = false;
    let started = Instant::now();
    let app = node_sim::App::build(sim, settings).await?;
    let sim_nodes = app.nodes().clone();
    let sim_stop = CancellationToken::new();
    let sim_task = tokio::spawn(app.run_until_stopped(sim_stop.clone()));
    let deadline = Instant::now() + Duration::from_secs(180);
    while !sim_nodes.iter().all(|n| n.is_connected()) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "nodes not all connected after 180 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{} nodes connected in {:.1} s; this process (node-sim) RSS {:.0} MB",
        sim_nodes.len(),
        started.elapsed().as_secs_f64(),
        status_kb(std::process::id(), "VmRSS:") as f64 / 1024.0
    );
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    println!(
        "after warm-up: queue length {:.0}",
        common::runtime::http::metric_sum(&logger.metrics(&http).await, "uplink_queue_length")
    );

    let published = |text: &str| {
        common::runtime::http::metric_sum(text, node_sim::metrics::TELEMETRY_PUBLISHED) as i64
    };
    // Readings that should land: made, less those dropped from a full node
    // buffer, less those whose key an earlier reading already had.
    let expected = |text: &str| {
        (common::runtime::http::metric_sum(text, node_sim::metrics::TELEMETRY_GENERATED)
            - common::runtime::http::metric_sum(text, node_sim::metrics::TELEMETRY_BUFFER_DROPPED)
            - common::runtime::http::metric_sum(text, node_sim::metrics::TELEMETRY_REPEATED_KEYS))
            as i64
    };
    let window_start = chrono::Utc::now();
    let text_0 = recorder.render();
    let published_0 = published(&text_0);
    let landed_0 = count(&db.pool, "SELECT count(*) FROM telemetry_samples").await?;
    // What the warm-up left in flight (in node buffers, the brokers, the
    // logger's queue): it lands inside the window but was made before it.
    let backlog_0 = (expected(&text_0) - landed_0).max(0);
    let cpu_0 = cpu_ticks(logger.pid());
    let t0 = Instant::now();
    let mut peak_queue = 0.0f64;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_queue = peak_queue.max(common::runtime::http::metric_sum(
            &logger.metrics(&http).await,
            "uplink_queue_length",
        ));
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_1 = cpu_ticks(logger.pid());
    let landed_1 = count(&db.pool, "SELECT count(*) FROM telemetry_samples").await?;
    let published_1 = published(&recorder.render());
    let window_end = chrono::Utc::now();

    sim_stop.cancel();
    sim_task.await??;
    let text = recorder.render();
    let published_total = published(&text);
    let generated =
        common::runtime::http::metric_sum(&text, node_sim::metrics::TELEMETRY_GENERATED) as i64;
    let buffer_dropped =
        common::runtime::http::metric_sum(&text, node_sim::metrics::TELEMETRY_BUFFER_DROPPED)
            as i64;
    let expected_total = expected(&text);
    let repeated =
        common::runtime::http::metric_sum(&text, node_sim::metrics::TELEMETRY_REPEATED_KEYS) as i64;
    let publish_errors =
        common::runtime::http::metric_sum(&text, node_sim::metrics::PUBLISH_ERRORS) as i64;

    // Drain: the queue empty and the row count still for 3 s.
    let drain_start = Instant::now();
    let mut last = -1i64;
    let mut still_since = Instant::now();
    let landed = loop {
        let n = count(&db.pool, "SELECT count(*) FROM telemetry_samples").await?;
        let queue =
            common::runtime::http::metric_sum(&logger.metrics(&http).await, "uplink_queue_length");
        if n != last {
            last = n;
            still_since = Instant::now();
        }
        if (n >= expected_total || queue == 0.0) && still_since.elapsed() > Duration::from_secs(3) {
            break n;
        }
        if drain_start.elapsed() > DRAIN_LIMIT {
            println!("queue not drained after {} s", DRAIN_LIMIT.as_secs());
            break n;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let drain = drain_start.elapsed().as_secs_f64() - 3.0;
    let logger_metrics = logger.metrics(&http).await;
    let peak_rss = status_kb(logger.pid(), "VmHWM:");
    let rss = status_kb(logger.pid(), "VmRSS:");

    // Publish→commit: `received_at` is the writing transaction's now(), `ts`
    // the whole second the node read the value in (truncated). So the figure
    // overstates the true lag by up to 1 s (0.5 s on average) and understates
    // it by the transaction's own time (see the flush duration below).
    // NULLs when no row of the window landed.
    let (p50, p99, max): (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag),
                max(lag)
         FROM (SELECT extract(epoch FROM received_at - ts)::float8 AS lag
               FROM telemetry_samples WHERE ts >= $1 AND ts < $2) t",
    )
    .bind(window_start)
    .bind(window_end)
    .fetch_one(&db.pool)
    .await?;

    let mut redis = common::store::redis::create_pool(&redis_url(), 1)?
        .get()
        .await?;
    let dead: Vec<String> = redis::cmd("LRANGE")
        .arg(&dead_letter)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await?;
    let mut dead_reasons: BTreeMap<String, u64> = BTreeMap::new();
    for record in &dead {
        let value: serde_json::Value = serde_json::from_str(record).unwrap_or_default();
        let reason = value["reason"].as_str().unwrap_or("?");
        let kind = value["topic"]
            .as_str()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("");
        *dead_reasons
            .entry(format!("{reason} ({kind})"))
            .or_default() += 1;
    }
    logger.stop()?;
    redis::cmd("DEL")
        .arg(&[&stream, &dead_letter])
        .query_async::<()>(&mut redis)
        .await?;

    // PostgreSQL's own bulk path: the same rows, COPY into a fresh table
    // with the same primary key (and index), one transaction.
    let mut conn = db.pool.acquire().await?;
    sqlx::query("CREATE TABLE telemetry_copy (LIKE telemetry_samples INCLUDING ALL)")
        .execute(&mut *conn)
        .await?;
    let mut rows = Vec::new();
    {
        let mut out = conn
            .copy_out_raw("COPY telemetry_samples TO STDOUT (FORMAT binary)")
            .await?;
        while let Some(chunk) = out.next().await {
            rows.extend_from_slice(&chunk?);
        }
    }
    sqlx::query("CHECKPOINT").execute(&mut *conn).await?;
    let copy_start = Instant::now();
    let mut copy = conn
        .copy_in_raw("COPY telemetry_copy FROM STDIN (FORMAT binary)")
        .await?;
    copy.send(rows.as_slice()).await?;
    let copied = copy.finish().await?;
    let copy_secs = copy_start.elapsed().as_secs_f64();
    let copy_rate = copied as f64 / copy_secs;
    drop(conn);

    let cpu_hz = 100.0; // USER_HZ on Linux
    let window_published = published_1 - published_0;
    let window_landed = landed_1 - landed_0;
    let sustained = (window_landed - backlog_0).max(0) as f64 / elapsed;
    let received = common::runtime::http::metric_sum(
        &logger_metrics,
        "uplink_received_total{kind=\"telemetry\"}",
    ) as i64;
    // Publishes beyond the readings sent once: buffer replays after a
    // reconnect (and retries of failed publishes).
    let replays = (published_total - (generated - buffer_dropped)).max(0);
    let lost = (expected_total - landed).max(0);
    let duplicated = (landed - expected_total).max(0);
    println!();
    println!(
        "readings made:           {generated}; {buffer_dropped} dropped from full node buffers, \
         {repeated} repeated a key already sent (the store keeps the first): {expected_total} should land"
    );
    println!(
        "messages published:      {published_total} acknowledged by the brokers, of them {replays} replays; \
         {publish_errors} publishes failed (buffered and retried)"
    );
    println!("rows landed:             {landed}");
    println!("lost:                    {lost} (readings that should land and did not)");
    println!(
        "duplicated:              {duplicated} rows beyond the readings that should land \
         (a duplicate delivery stored twice); {} deliveries to the logger beyond the rows, absorbed by the key",
        (received - landed - dead.len() as i64).max(0)
    );
    println!("dead-lettered:           {} {dead_reasons:?}", dead.len());
    println!(
        "logger counters:         received telemetry {:.0}, inserted {:.0}, queue left {:.0}",
        common::runtime::http::metric_sum(
            &logger_metrics,
            "uplink_received_total{kind=\"telemetry\"}"
        ),
        common::runtime::http::metric_sum(&logger_metrics, "telemetry_inserted_total"),
        common::runtime::http::metric_sum(&logger_metrics, "uplink_queue_length")
    );
    println!(
        "measured window:         {elapsed:.1} s: published {window_published} ({:.0} msg/s), landed {window_landed}, \
         of them {backlog_0} left over from the warm-up",
        window_published as f64 / elapsed
    );
    println!(
        "sustained end to end:    {sustained:.0} msg/s, warm-up backlog excluded (goal ≥ {goal_rate})"
    );
    println!("drain after stop:        {drain:.1} s; peak queue length {peak_queue:.0}");
    let secs = |v: Option<f64>| v.map_or("none landed".to_owned(), |v| format!("{v:.3} s"));
    println!(
        "publish→commit (window): p50 {}, p99 {}, max {} (ts in whole seconds: upper bound, see source)",
        secs(p50),
        secs(p99),
        secs(max)
    );
    let flushes =
        common::runtime::http::metric_sum(&logger_metrics, "uplink_flush_duration_seconds_count");
    if flushes > 0.0 {
        println!(
            "logger batches:          {flushes:.0}, mean {:.0} entries, mean flush {:.1} ms",
            common::runtime::http::metric_sum(&logger_metrics, "uplink_batch_size_sum")
                / common::runtime::http::metric_sum(&logger_metrics, "uplink_batch_size_count")
                    .max(1.0),
            common::runtime::http::metric_sum(&logger_metrics, "uplink_flush_duration_seconds_sum")
                / flushes
                * 1e3
        );
    }
    println!(
        "history-logger memory:   peak {:.1} MB (VmHWM), now {:.1} MB",
        peak_rss as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    println!("CPU during the window (100 % = one core):");
    for (group, after) in &cpu_1 {
        let before = cpu_0.get(group).copied().unwrap_or(0);
        println!(
            "  {group:<34} {:>5.0} %",
            (after.saturating_sub(before)) as f64 / cpu_hz / elapsed * 100.0
        );
    }
    println!(
        "PostgreSQL COPY:         {copied} rows in {copy_secs:.2} s = {copy_rate:.0} rows/s; ingest/COPY = {:.2}",
        sustained / copy_rate
    );
    println!("load average after:      {}", load_average());

    let peak_rss_mb = peak_rss as f64 / 1024.0;
    let checks = [
        (
            sustained >= goal_rate as f64,
            format!("sustained {sustained:.0} msg/s ≥ {goal_rate}"),
        ),
        (lost == 0, format!("lost {lost} = 0")),
        (duplicated == 0, format!("duplicated {duplicated} = 0")),
        (
            buffer_dropped == 0,
            format!("dropped from full node buffers {buffer_dropped} = 0"),
        ),
        (
            p99.is_some_and(|p| p <= goal_p99),
            format!("publish→commit p99 {} ≤ {goal_p99:.3} s", secs(p99)),
        ),
        (
            peak_rss_mb <= goal_rss_mb as f64,
            format!("logger peak RSS {peak_rss_mb:.1} MB ≤ {goal_rss_mb} MB"),
        ),
    ];
    let missed = testkit::judge(&checks);
    anyhow::ensure!(
        missed.is_empty(),
        "bench-ingest: acceptance not met: {}",
        missed.join("; ")
    );
    Ok(())
}
