//! The dashboard's reads against real tables: the page and its files, the
//! broker history (downsampled), the zone map, the node table and the event
//! stream.

mod helpers;

use std::time::Duration;

use helpers::{WAIT, seed_nodes, spawn_registry};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_from_the_binary() {
    let r = spawn_registry(&["primary"], &[]).await;
    let page = r.http.get(&r.base).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for id in [
        "brokers",
        "zone-map",
        "nodes",
        "failovers",
        "advisor",
        "controls",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"{id}\"")),
            "section {id}"
        );
    }
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing from elsewhere"
    );
    for (path, kind, needle) in [
        (
            "/dashboard/app.js",
            "text/javascript",
            "EventSource(\"/api/stream\")",
        ),
        (
            "/dashboard/chart.js",
            "text/javascript",
            "function sparkline",
        ),
        ("/dashboard/style.css", "text/css", "--good"),
    ] {
        let answer = r.request(Method::GET, path).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.headers()["content-type"], kind, "{path}");
        assert!(answer.text().await.unwrap().contains(needle), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_at_most_120_points_per_broker_of_the_window() {
    let r = spawn_registry(&["primary", "primary"], &[]).await;
    // Ten samples a minute for two hours: 600 in the last hour.
    sqlx::query(
        "INSERT INTO broker_health_samples (broker_id, sampled_at, probe_ok, load_index, msgs_per_sec, status) \
         SELECT 'mqtt1', now() - make_interval(secs => s * 6 + 90), true, 0.25, 40, 'GOOD' \
         FROM generate_series(0, 1199) s",
    )
    .execute(r.pool())
    .await
    .unwrap();
    let (status, body) = r.get("/api/brokers/history?minutes=60").await;
    assert_eq!(status, 200, "{body}");
    let series = body["data"]["brokers"]["mqtt1"]
        .as_array()
        .expect("mqtt1 series");
    assert!(
        (100..=121).contains(&series.len()),
        "{} points",
        series.len()
    );
    let old: Vec<&Value> = series
        .iter()
        .filter(|p| p["probe_ok"] == true && p["load_index"].as_f64() == Some(0.25))
        .collect();
    assert!(
        old.len() >= 100,
        "the inserted samples are averaged: {series:?}"
    );
    let times: Vec<&str> = series.iter().map(|p| p["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "oldest first");
    let (status, _) = r.get("/api/brokers/history?minutes=1441").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_zone_map_count_rates_moves_stranded_and_unbound() {
    let r = spawn_registry(&["primary", "primary"], &[]).await;
    let ids = seed_nodes(r.pool(), 3, 1).await;
    let assigned = r.wait_assigned(4).await;
    let pool = r.pool();
    sqlx::raw_sql(
        "INSERT INTO nodes (uid, type) VALUES ('nd-free', 'ph');
         UPDATE nodes SET status = 'ONLINE', rssi = -61, last_seen_at = now() WHERE uid = 'nd-n-1';",
    )
    .execute(pool)
    .await
    .unwrap();
    let n1 = ids["nd-n-1"];
    // Ten readings in the last five minutes (two a minute), five older ones.
    sqlx::query(
        "INSERT INTO telemetry_samples (node_id, zone_id, channel, metric_type, value, ts) \
         SELECT $1, (SELECT zone_id FROM nodes WHERE id = $1), 'ph', 'PH', 6.1, now() - make_interval(secs => s * 20) \
         FROM generate_series(0, 9) s \
         UNION ALL SELECT $1, (SELECT zone_id FROM nodes WHERE id = $1), 'ph', 'PH', 6.1, now() - make_interval(mins => 10 + s) \
         FROM generate_series(0, 4) s",
    )
    .bind(n1)
    .execute(pool)
    .await
    .unwrap();
    // Three commands in the last hour, one before.
    sqlx::query(
        "INSERT INTO commands (cmd_id, node_id, channel, cmd, source, created_at) \
         SELECT 'c-' || s, $1, 'pump', 'run_pump', 'api', now() - make_interval(mins => s * 25) \
         FROM generate_series(0, 3) s",
    )
    .bind(n1)
    .execute(pool)
    .await
    .unwrap();
    // nd-c-1 cannot follow a move and its broker is dead: stranded.
    let dead = assigned["nd-c-1"].clone();
    sqlx::query("UPDATE nodes SET move_via = 'node_config' WHERE uid = 'nd-c-1'")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("UPDATE brokers SET status = 'OFFLINE' WHERE id = $1")
        .bind(&dead)
        .execute(pool)
        .await
        .unwrap();

    let (status, body) = r.get("/api/nodes").await;
    assert_eq!(status, 200, "{body}");
    let nodes = body["data"].as_array().unwrap();
    assert_eq!(nodes.len(), 5);
    let node = |uid: &str| nodes.iter().find(|n| n["uid"] == uid).unwrap().clone();
    let one = node("nd-n-1");
    assert_eq!(one["readings_per_min"], 2.0);
    assert_eq!(one["commands_last_hour"], 3);
    assert_eq!(one["status"], "ONLINE");
    assert_eq!(one["rssi"], -61);
    assert_eq!(one["broker_id"].as_str(), Some(assigned["nd-n-1"].as_str()));
    assert_eq!(one["moving"], true, "no node confirmed its assignment");
    assert_eq!(one["unbound"], false);
    let free = node("nd-free");
    assert_eq!(free["unbound"], true);
    assert_eq!(free["zone_uid"], Value::Null);
    assert_eq!(free["commands_last_hour"], 0);

    let (status, body) = r.get("/api/zones/map").await;
    assert_eq!(status, 200, "{body}");
    let cells = body["data"].as_array().unwrap();
    let sum = |zone: &str, key: &str| -> i64 {
        cells
            .iter()
            .filter(|c| c["zone_uid"] == zone)
            .map(|c| c[key].as_i64().unwrap())
            .sum()
    };
    assert_eq!(sum("zn-normal", "nodes"), 3);
    assert_eq!(sum("zn-normal", "moving"), 3);
    assert_eq!(sum("zn-normal", "offline"), 2, "nd-n-1 is ONLINE");
    assert_eq!(sum("zn-critical", "nodes"), 1);
    assert_eq!(sum("zn-critical", "stranded"), 1);
    let critical = cells
        .iter()
        .find(|c| c["zone_uid"] == "zn-critical")
        .unwrap();
    assert_eq!(critical["broker_id"].as_str(), Some(dead.as_str()));
    assert!(
        cells.iter().all(|c| c["zone_uid"] != Value::Null),
        "unbound nodes have no cell"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_snapshots_and_a_status_change_as_it_happens() {
    let r = spawn_registry(&["primary", "primary"], &[]).await;
    let mut answer = r
        .http
        .get(format!("{}/api/stream", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let mut changed = false;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !seen.contains("event: broker-status") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status event: {seen}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(10), answer.chunk())
            .await
            .expect("the stream sends every two seconds")
            .unwrap()
            .expect("the stream stays open");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if !changed && seen.contains("event: snapshot") {
            assert!(seen.contains("\"mqtt2\""), "{seen}");
            // The health monitor leaves OFFLINE alone (failover's call).
            sqlx::query("UPDATE brokers SET status = 'OFFLINE' WHERE id = 'mqtt2'")
                .execute(r.pool())
                .await
                .unwrap();
            changed = true;
        }
    }
    let line = seen
        .lines()
        .skip_while(|l| *l != "event: broker-status")
        .nth(1)
        .unwrap();
    let change: Value = serde_json::from_str(line.trim_start_matches("data: ")).unwrap();
    assert_eq!(change["broker"], "mqtt2");
    assert_eq!(change["to"], "OFFLINE");
}
