//! Seeding against a real (private) PostgreSQL: the simulator's layout is
//! written once (greenhouse, zones, nodes, channels) and before its nodes
//! start.

mod support;

use node_sim::layout::layout;
use node_sim::seed::seed;
use serde_json::Value;
use support::{TestSim, settings, sim_settings};
use testkit::TestDb;

#[tokio::test]
async fn seeding_writes_the_layout_once() {
    let db = TestDb::new().await;
    let sim = sim_settings(3, 5);
    let l = layout(&sim);
    let first = seed(&db.pool, &l, &sim.greenhouse).await.unwrap();
    assert_eq!(
        (
            first.greenhouses_written,
            first.zones_written,
            first.nodes_written,
            first.channels_written
        ),
        (1, 3, 5, 15)
    );
    let count = |table: &'static str| {
        let pool = db.pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&pool)
                .await
                .unwrap();
            n
        }
    };
    let counts = (
        count("greenhouses").await,
        count("zones").await,
        count("nodes").await,
        count("node_channels").await,
    );
    assert_eq!(counts, (1, 3, 5, 15));
    let snapshot = || {
        let pool = db.pool.clone();
        async move {
            sqlx::query_as::<
                _,
                (
                    String,
                    Option<String>,
                    String,
                    Option<String>,
                    Option<String>,
                ),
            >(
                "SELECT n.uid, z.uid, n.type, n.fw_version, n.secret
                 FROM nodes n LEFT JOIN zones z ON z.id = n.zone_id ORDER BY n.uid",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let rows = snapshot().await;
    let ec4 = rows.iter().find(|r| r.0 == "nd-ec-4").expect("nd-ec-4");
    assert_eq!(
        (ec4.1.as_deref(), ec4.2.as_str(), ec4.3.as_deref()),
        (Some("zn-1"), "ec", Some("sim-1.0"))
    );
    // Every node has a secret of its own (never the default), and a broker
    // password.
    let secrets: std::collections::HashSet<_> = rows.iter().map(|r| r.4.clone()).collect();
    assert_eq!(secrets.len(), 5, "one secret per node");
    assert!(
        rows.iter()
            .all(|r| r.4.as_ref().is_some_and(|s| s.len() == 64))
    );
    let (passwords,): (i64,) = sqlx::query_as(
        "SELECT count(DISTINCT mqtt_password) FROM nodes WHERE length(mqtt_password) >= 32",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(passwords, 5);

    // Classic nodes follow config/update, and say so.
    let (others,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM nodes WHERE move_via <> 'config_update'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(others, 0);

    let second = seed(&db.pool, &l, &sim.greenhouse).await.unwrap();
    assert_eq!(second.greenhouse_id, first.greenhouse_id);
    assert_eq!(
        (
            second.greenhouses_written,
            second.zones_written,
            second.nodes_written,
            second.channels_written
        ),
        (0, 0, 0, 0)
    );
    let again = (
        count("greenhouses").await,
        count("zones").await,
        count("nodes").await,
        count("node_channels").await,
    );
    assert_eq!(again, counts);
    assert_eq!(snapshot().await, rows, "secrets are kept");

    // A row without credentials (seeded by an older simulator) gets them;
    // the others keep theirs.
    sqlx::query("UPDATE nodes SET secret = NULL, mqtt_password = NULL WHERE uid = 'nd-ph-1'")
        .execute(&db.pool)
        .await
        .unwrap();
    seed(&db.pool, &l, &sim.greenhouse).await.unwrap();
    let third = snapshot().await;
    for (before, after) in rows.iter().zip(&third) {
        if before.0 == "nd-ph-1" {
            assert!(after.4.is_some() && after.4 != before.4);
        } else {
            assert_eq!(before, after);
        }
    }
    let creds = node_sim::seed::credentials(&db.pool, &["nd-ph-1", "nd-ec-4"])
        .await
        .unwrap();
    assert_eq!(creds.len(), 2);
    assert!(creds["nd-ph-1"].mqtt_password.is_some());

    let (ty, metric, unit): (String, Option<String>, Option<String>) = sqlx::query_as(
        "SELECT c.type, c.metric_type, c.unit FROM node_channels c JOIN nodes n ON n.id = c.node_id
         WHERE n.uid = 'nd-ph-1' AND c.channel = 'ph_sensor'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (ty.as_str(), metric.as_deref(), unit.as_deref()),
        ("sensor", Some("PH"), Some("pH"))
    );
}

#[tokio::test]
async fn the_app_seeds_before_it_starts() {
    let db = TestDb::new().await;
    let mut sim_cfg = sim_settings(2, 3);
    sim_cfg.seed_db = true;
    let gh = sim_cfg.greenhouse.clone();
    let mut sim = TestSim::start_with(sim_cfg, settings(&[("DATABASE_URL", &db.url)])).await;
    let (name,): (String,) = sqlx::query_as("SELECT name FROM greenhouses WHERE uid = $1")
        .bind(&gh)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(name, "Simulated greenhouse");
    let (nodes,): (i64,) = sqlx::query_as("SELECT count(*) FROM nodes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(nodes, 3);
    // Seeded nodes log in with their own accounts, which device-registry
    // would create.
    sim.broker.sync_node_accounts(&db.pool).await;
    sim.wait_all_connected().await;
    let body: Value = sim.get_json("/health").await;
    assert_eq!(body["dependencies"]["postgres"]["state"], "up");
    sim.stop().await;
}
