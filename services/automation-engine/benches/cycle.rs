//! `make bench-automation`: 1,000 zones (BENCH_ZONES) with a recipe and
//! fresh pH/EC readings, most of them off target; times full cycles of the
//! engine and counts the commands they produced. Goal: a cycle of 1,000
//! zones in under 1 s.
//!
//! Real parts: PostgreSQL (a fresh database), a private Mosquitto that
//! takes every command (no node answers, so doses stay SENT), the engine's
//! own send path and lease. Cycles:
//! 1. cold: every zone decides, the off-target ones are dosed (concurrency
//!    starts at its maximum, nothing measured yet);
//! 2. every dose is still open: every zone skips (`previous_dose_pending`);
//! 3. the doses are marked DONE: the zones are dosed again, with the
//!    concurrency adapted from the earlier cycles.

use std::time::Duration;

use automation_engine::cycle::{CycleReport, Engine};
use common::commands::CommandSender;
use common::commands::status_writer::StatusWriter;
use common::mqtt::pool::BrokerPool;
use common::runtime::lease::Lease;
use common::settings::{FromEnv, Settings};
use testkit::{TestBroker, TestDb, env_u64, env_vars, load_average};
use tokio_util::sync::CancellationToken;

fn print(name: &str, r: &CycleReport) {
    println!(
        "  {name:<34} {:>6.0} ms   zones {:>5}   commands {:>5}   events {:>5}   failed {:>3}   concurrency {:>2}",
        r.elapsed.as_secs_f64() * 1e3,
        r.zones,
        r.doses,
        r.events,
        r.failed,
        r.concurrency
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    common::runtime::logging::init_with_default(common::settings::LogFormat::Text, "warn");
    let zones = env_u64("BENCH_ZONES", 1000) as usize;
    println!(
        "bench-automation: {zones} zones (one pH and one EC node each); {} cores, load {}",
        std::thread::available_parallelism()?.get(),
        load_average()
    );
    let db = TestDb::new().await;
    let broker = TestBroker::start().await;
    let pool = db.pool.clone();
    let sim = node_sim::SimSettings {
        zones,
        nodes: 2 * zones,
        ..Default::default()
    };
    node_sim::seed::seed(&pool, &node_sim::layout::layout(&sim), "gh-bench").await?;
    let recipe: i64 =
        sqlx::query_scalar("INSERT INTO recipes (name) VALUES ('bench') RETURNING id")
            .fetch_one(&pool)
            .await?;
    sqlx::raw_sql(&format!(
        "INSERT INTO recipe_phases (recipe_id, phase_index, name, duration_hours, targets) \
         VALUES ({recipe}, 0, 'grow', 720, '{{\"ph\":{{\"target\":5.8}},\"ec\":{{\"target\":1.6}}}}');
         INSERT INTO zone_recipe_instances (zone_id, recipe_id) SELECT id, {recipe} FROM zones;
         UPDATE zones SET capabilities = '{{\"automation\":{{\"ph\":{{\"min_interval_sec\":0}},\"ec\":{{\"min_interval_sec\":0}}}}}}';
         -- pH 5.8 + (-0.75 .. +0.75), EC 1.6 + (-0.4 .. +0.4): 6 in 7 and 4 in 5 off target.
         INSERT INTO telemetry_last (node_id, channel, metric_type, zone_id, value, stable, ts)
         SELECT n.id, c.channel, c.metric_type, n.zone_id,
                CASE c.metric_type WHEN 'PH' THEN 5.8 + (n.id % 7 - 3) * 0.25 ELSE 1.6 + (n.id % 5 - 2) * 0.2 END,
                true, now()
         FROM nodes n JOIN node_channels c ON c.node_id = n.id WHERE c.metric_type IN ('PH', 'EC');
         CHECKPOINT;"
    ))
    .execute(&pool)
    .await?;

    let vars = env_vars(&[
        ("DATABASE_URL", db.url.as_str()),
        ("MQTT_PORT", &broker.port.to_string()),
        ("MQTT_USER", &testkit::backend_login().user),
        ("MQTT_PASS", &testkit::backend_login().pass),
    ]);
    let settings = Settings::from_vars(vars)?;
    let stop = CancellationToken::new();
    let brokers = BrokerPool::connect(&settings, &pool, "bench-automation", None, &stop).await?;
    brokers
        .default_broker()
        .wait_connected(Duration::from_secs(10))
        .await?;
    let sender = CommandSender::new(
        pool.clone(),
        brokers,
        settings.node_default_secret.clone(),
        StatusWriter::spawn(pool.clone()),
    );
    let mut lease = Lease::new(
        pool.clone(),
        automation_engine::LEASE_NAME,
        "bench",
        Duration::from_secs(60),
    )
    .spawn(stop.clone());
    lease.wait_held().await;
    // The service's defaults (TARGET_CYCLE_TIME_SEC = 1), every event written.
    let defaults = automation_engine::AutomationSettings::from_vars(env_vars::<&str, &str>(&[]))?;
    let mut engine = Engine::new(
        pool.clone(),
        sender,
        lease,
        defaults.target_cycle_time(),
        Duration::ZERO,
    );

    let cold = engine.run_cycle().await?;
    print("1 cold, doses sent", &cold);
    let pending = engine.run_cycle().await?;
    print("2 every dose still open", &pending);
    sqlx::query(
        "UPDATE commands SET status = 'DONE', finished_at = now() WHERE finished_at IS NULL",
    )
    .execute(&pool)
    .await?;
    let again = engine.run_cycle().await?;
    print("3 doses done, dosed again", &again);

    let commands: i64 =
        sqlx::query_scalar("SELECT count(*) FROM commands WHERE source = 'automation'")
            .fetch_one(&pool)
            .await?;
    println!(
        "  commands in the database: {commands} (expected {})",
        cold.doses + again.doses
    );
    let worst = [&cold, &pending, &again]
        .iter()
        .map(|r| r.elapsed)
        .max()
        .unwrap_or_default();
    println!(
        "  goal: a cycle of 1,000 zones in under 1 s — slowest cycle {:.0} ms: {}",
        worst.as_secs_f64() * 1e3,
        if worst < Duration::from_secs(1) {
            "met"
        } else {
            "NOT met"
        }
    );
    stop.cancel();
    Ok(())
}
