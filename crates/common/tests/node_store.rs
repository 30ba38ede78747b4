//! The store of a node's life (`store::nodes`, `node_binds`,
//! `node_channels`) against a real database: statuses read back as their
//! enums, the sighting statements (the observed broker only when it is
//! known, a seeded node learning its hardware id), and a bind from pending
//! to done or expired.

use std::time::Duration;

use common::store::node_binds::{self, BindState, Expired, NewBind};
use common::store::node_channels::{self, ChannelRow};
use common::store::nodes::{self, Lifecycle, Seen, Target};
use common::store::{greenhouses, zones};
use serde_json::json;
use sqlx::PgPool;
use testkit::TestDb;

/// One broker `mqtt1`, greenhouse `gh-1` with zone `zn-1`: the zone's id.
async fn place(pool: &PgPool) -> i64 {
    sqlx::raw_sql(
        "INSERT INTO brokers (id, url) VALUES ('mqtt1', 'mqtt://127.0.0.1:1883');
         INSERT INTO greenhouses (uid, name) VALUES ('gh-1', 'G1');
         INSERT INTO zones (uid, greenhouse_id, name) SELECT 'zn-1', id, 'Z1' FROM greenhouses;",
    )
    .execute(pool)
    .await
    .unwrap();
    let gh = greenhouses::id_of(pool, "gh-1").await.unwrap().unwrap();
    assert_eq!(zones::id_in(pool, gh, "zn-9").await.unwrap(), None);
    zones::id_in(pool, gh, "zn-1").await.unwrap().unwrap()
}

fn seen<'a>(hardware_id: &'a str, broker_id: &'a str) -> Seen<'a> {
    Seen {
        hardware_id,
        node_type: None,
        fw_version: None,
        capabilities: None,
        move_via: None,
        broker_id,
    }
}

#[tokio::test]
async fn a_node_is_registered_refreshed_assigned_and_retired() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let zone = place(pool).await;

    let first = seen("hw-1", "mqtt1");
    let id = nodes::insert_registered(pool, "nd-ph-1", "ph", &first)
        .await
        .unwrap()
        .expect("a free uid");
    let other = seen("hw-9", "mqtt1");
    let again = nodes::insert_registered(pool, "nd-ph-1", "ph", &other);
    assert_eq!(again.await.unwrap(), None, "the uid is taken");
    assert!(nodes::hardware_id_taken(pool, "hw-1").await.unwrap());
    let node = nodes::find(pool, "hw-1").await.unwrap().unwrap();
    assert_eq!((node.id, node.lifecycle), (id, Lifecycle::Registered));
    assert_eq!(node.observed_broker_id.as_deref(), Some("mqtt1"));
    assert_eq!((node.node_type.as_str(), node.pending), ("ph", false));

    // A seeded node without a hardware id learns it; an unknown broker is
    // not observed.
    sqlx::query("INSERT INTO nodes (uid) VALUES ('nd-seed')")
        .execute(pool)
        .await
        .unwrap();
    let hello = Seen {
        node_type: Some("ec"),
        fw_version: Some("1.2.0"),
        ..seen("hw-2", "nowhere")
    };
    let touched = nodes::touch(pool, Target::UidWithoutHardwareId("nd-seed"), &hello)
        .await
        .unwrap()
        .unwrap();
    let seed = nodes::find(pool, "hw-2").await.unwrap().unwrap();
    assert_eq!((seed.id, seed.uid.as_str()), (touched.id, "nd-seed"));
    assert_eq!(
        (seed.node_type.as_str(), seed.fw_version.as_deref()),
        ("ec", Some("1.2.0"))
    );
    assert_eq!(seed.observed_broker_id, None);
    let nobody = nodes::touch(pool, Target::HardwareId("hw-3"), &hello);
    assert_eq!(nobody.await.unwrap(), None);

    nodes::assign(
        pool,
        id,
        zone,
        "nd-tank",
        "s".repeat(64).as_str(),
        Some("Tank"),
    )
    .await
    .unwrap();
    let node = nodes::find(pool, "nd-tank").await.unwrap().unwrap();
    assert_eq!(node.lifecycle, Lifecycle::Assigned);
    assert_eq!(
        (node.gh_uid.as_deref(), node.zone_uid.as_deref()),
        (Some("gh-1"), Some("zn-1"))
    );
    let uids: Vec<String> = nodes::list(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.uid)
        .collect();
    assert_eq!(uids, ["nd-seed", "nd-tank"]);
    let password = nodes::issue_mqtt_password(pool, id, &"a".repeat(48))
        .await
        .unwrap();
    let kept = nodes::issue_mqtt_password(pool, id, &"b".repeat(48))
        .await
        .unwrap();
    assert_eq!(kept, password, "a node keeps its password");

    nodes::decommission(pool, id).await.unwrap();
    let owner = nodes::owner_of_hardware_id(pool, "hw-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.lifecycle, Lifecycle::Decommissioned);
    let refreshed = nodes::touch(pool, Target::HardwareId("hw-1"), &first);
    assert_eq!(refreshed.await.unwrap(), None, "a retired node stays so");
}

#[tokio::test]
async fn a_bind_is_pending_until_done_or_expired() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let zone = place(pool).await;
    let node = nodes::insert_registered(pool, "nd-ph-1", "ph", &seen("hw-1", "mqtt1"))
        .await
        .unwrap()
        .unwrap();
    let config = json!({"node_id": "nd-tank"});
    let secret = "s".repeat(64);
    let bind = |ttl| NewBind {
        node_id: node,
        zone_id: zone,
        node_uid: "nd-tank",
        name: None,
        secret: &secret,
        config: &config,
        config_topic: "hydro/gh-temp/zn-temp/hw-1/config",
        broker_id: Some("mqtt1"),
        ttl,
    };

    let id = node_binds::insert(pool, &bind(Duration::from_secs(60)))
        .await
        .unwrap();
    let pending = node_binds::pending_for_uid(pool, "nd-tank")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((pending.id, pending.state), (id, BindState::Pending));
    assert_eq!(
        (pending.gh_uid.as_str(), pending.zone_uid.as_str()),
        ("gh-1", "zn-1")
    );
    assert!(nodes::find(pool, "hw-1").await.unwrap().unwrap().pending);
    assert!(nodes::uid_taken(pool, "nd-tank", node + 1).await.unwrap());
    assert!(!nodes::uid_taken(pool, "nd-tank", node).await.unwrap());
    assert!(node_binds::mark_done(pool, id).await.unwrap());
    assert!(!node_binds::mark_done(pool, id).await.unwrap(), "once");
    assert_eq!(
        node_binds::latest(pool, node).await.unwrap().unwrap().state,
        BindState::Done
    );
    assert!(node_binds::pending(pool, node).await.unwrap().is_none());

    let late = node_binds::insert(pool, &bind(Duration::ZERO))
        .await
        .unwrap();
    assert!(
        node_binds::pending_for_uid(pool, "nd-tank")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        node_binds::pending(pool, node).await.unwrap().unwrap().id,
        late
    );
    let expired = node_binds::expire(pool).await.unwrap();
    assert_eq!(
        expired,
        [Expired {
            node_uid: "nd-tank".into(),
            node_id: node
        }]
    );
    assert_eq!(
        node_binds::latest(pool, node).await.unwrap().unwrap().state,
        BindState::Expired
    );
    assert_eq!(node_binds::pending_count(pool).await.unwrap(), 0);
    assert!(!node_binds::cancel_pending(pool, node).await.unwrap());
}

#[tokio::test]
async fn channels_are_upserted_and_removed() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let node = nodes::insert_registered(pool, "nd-ph-1", "ph", &seen("hw-1", "mqtt1"))
        .await
        .unwrap()
        .unwrap();
    let row = |channel: &str, metric: &str| ChannelRow {
        channel: channel.into(),
        kind: "sensor".into(),
        metric_type: Some(metric.into()),
        unit: None,
    };
    for r in [
        row("ph_sensor", "PH"),
        row("ec_sensor", "EC"),
        row("ph_sensor", "ORP"),
    ] {
        node_channels::upsert(pool, node, &r).await.unwrap();
    }
    node_channels::remove(pool, node, &["ec_sensor".into()])
        .await
        .unwrap();
    assert_eq!(
        node_channels::lock(pool, node).await.unwrap(),
        [row("ph_sensor", "ORP")]
    );
}
