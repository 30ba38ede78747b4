//! A fresh, migrated database per test (dropped with it), and counts and
//! waits over it.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::eventually;

/// The admin connection tests create databases through: `DATABASE_URL`, else
/// the local development database.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://hydro:hydro@127.0.0.1:5432/hydro_dev".into())
}

/// A freshly created and migrated database, dropped when this value is.
pub struct TestDb {
    pub pool: PgPool,
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let admin = admin_url();
        let name = format!("hydro_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("tests need PostgreSQL at {admin} (run `make services`): {e}")
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let options = PgConnectOptions::from_str(&admin)
            .expect("admin url")
            .database(&name);
        let url = format!(
            "{}/{}",
            admin.rsplit_once('/').expect("url has a database").0,
            name
        );
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(options)
            .await
            .expect("connect test database");
        common::store::db::MIGRATOR
            .run(&pool)
            .await
            .expect("migrations apply to an empty database");
        TestDb { pool, name, url }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let admin = admin_url();
        // Drop runs inside the test's runtime; a thread of its own may block.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// Seeds greenhouse `(uid, name)` with `zones` `(uid, name)`; answers the
/// zones' ids, in order.
pub async fn seed_zones(
    pool: &PgPool,
    (greenhouse, greenhouse_name): (&str, &str),
    zones: &[(&str, &str)],
) -> Vec<i64> {
    let greenhouse_id: i64 =
        sqlx::query_scalar("INSERT INTO greenhouses (uid, name) VALUES ($1, $2) RETURNING id")
            .bind(greenhouse)
            .bind(greenhouse_name)
            .fetch_one(pool)
            .await
            .expect("seed greenhouse");
    let mut ids = Vec::new();
    for (uid, name) in zones {
        let id = sqlx::query_scalar(
            "INSERT INTO zones (uid, greenhouse_id, name) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(uid)
        .bind(greenhouse_id)
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("seed zone");
        ids.push(id);
    }
    ids
}

/// Registers brokers `(id, url)` in the `brokers` table, as an operator
/// would.
pub async fn register_brokers(pool: &PgPool, brokers: &[(String, String)]) {
    for (id, url) in brokers {
        sqlx::query("INSERT INTO brokers (id, url) VALUES ($1, $2)")
            .bind(id)
            .bind(url)
            .execute(pool)
            .await
            .expect("register broker");
    }
}

/// How long the database helpers below wait for a count.
pub const COUNT_WAIT: Duration = Duration::from_secs(60);

/// The one value `sql` selects.
pub async fn scalar<T>(pool: &PgPool, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// The one value `sql` selects for `key` (its `$1`).
pub async fn scalar_for<T>(pool: &PgPool, sql: &str, key: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql)
        .bind(key)
        .fetch_one(pool)
        .await
        .expect(sql)
}

/// `SELECT count(*)` of a query.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    scalar(pool, sql).await
}

/// Waits (up to [`COUNT_WAIT`]) until `sql`'s count reaches at least `n`;
/// answers the last count.
pub async fn wait_count(pool: &PgPool, sql: &str, n: i64) -> i64 {
    let reached = eventually(COUNT_WAIT, || async {
        let c = count(pool, sql).await;
        (c >= n).then_some(c)
    })
    .await;
    match reached {
        Some(c) => c,
        None => count(pool, sql).await,
    }
}

/// Whether `sql`'s count comes to satisfy `holds` within `timeout` (polled).
pub async fn count_comes_to(
    pool: &PgPool,
    sql: &str,
    timeout: Duration,
    holds: impl Fn(i64) -> bool,
) -> bool {
    eventually(timeout, || async {
        holds(count(pool, sql).await).then_some(())
    })
    .await
    .is_some()
}

/// The payloads of the zone events of type `kind` in zone `zone`, oldest first.
pub async fn zone_event_payloads(pool: &PgPool, zone: &str, kind: &str) -> Vec<serde_json::Value> {
    sqlx::query_scalar(
        "SELECT e.payload_json FROM zone_events e JOIN zones z ON z.id = e.zone_id \
         WHERE z.uid = $1 AND e.type = $2 ORDER BY e.id",
    )
    .bind(zone)
    .bind(kind)
    .fetch_all(pool)
    .await
    .expect("events")
}
