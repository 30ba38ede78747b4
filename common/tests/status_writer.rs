//! The status writer against a real database: a SENT mark written after the
//! node's answer (its PUBACK came late) never dates the send after the answer.

use chrono::{Duration, Utc};
use common::command_status::CommandStatus;
use common::status_writer::{StatusUpdate, apply};
use common::testing::TestDb;

#[tokio::test]
async fn a_late_sent_mark_is_never_after_the_answer() {
    let db = TestDb::new().await;
    sqlx::query("INSERT INTO commands (cmd_id, channel, cmd, source) VALUES ('c1', 'pump_acid', 'run_pump', 'api')")
        .execute(&db.pool)
        .await
        .unwrap();
    let ack = Utc::now();
    let sent = ack + Duration::milliseconds(3);
    apply(
        &db.pool,
        &[StatusUpdate::new("c1", CommandStatus::Ack, ack)],
    )
    .await
    .unwrap();
    apply(
        &db.pool,
        &[StatusUpdate::new("c1", CommandStatus::Sent, sent)],
    )
    .await
    .unwrap();
    let (status, sent_at, ack_at): (String, chrono::DateTime<Utc>, chrono::DateTime<Utc>) =
        sqlx::query_as("SELECT status, sent_at, ack_at FROM commands WHERE cmd_id = 'c1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(status, "ACK");
    assert!(sent_at <= ack_at, "sent {sent_at} after ack {ack_at}");

    // Both in one batch, the SENT mark's clock read last: the same.
    sqlx::query("INSERT INTO commands (cmd_id, channel, cmd, source) VALUES ('c2', 'pump_acid', 'run_pump', 'api')")
        .execute(&db.pool)
        .await
        .unwrap();
    apply(
        &db.pool,
        &[
            StatusUpdate::new("c2", CommandStatus::Ack, ack),
            StatusUpdate::new("c2", CommandStatus::Sent, sent),
        ],
    )
    .await
    .unwrap();
    let (sent_at, ack_at): (chrono::DateTime<Utc>, chrono::DateTime<Utc>) =
        sqlx::query_as("SELECT sent_at, ack_at FROM commands WHERE cmd_id = 'c2'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(sent_at <= ack_at, "sent {sent_at} after ack {ack_at}");
}
