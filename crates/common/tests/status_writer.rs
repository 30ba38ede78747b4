//! The status writer against a real database: the send is never dated after
//! the node's answer, and the acknowledgement never after the final answer,
//! whichever of them is written first (the SENT mark's clock is read after
//! the broker's PUBACK, which can come after the node's ACK arrived).

use chrono::{DateTime, Duration, SubsecRound, Utc};
use common::commands::status::CommandStatus::{self, Ack, Done, Sent};
use common::commands::status_writer::{StatusUpdate, apply};
use testkit::TestDb;

async fn insert(db: &TestDb, cmd_id: &str) {
    sqlx::query("INSERT INTO commands (cmd_id, channel, cmd, source) VALUES ($1, 'pump_acid', 'run_pump', 'api')")
        .bind(cmd_id)
        .execute(&db.pool)
        .await
        .unwrap();
}

/// Applies `updates` of command `cmd_id`, each in a batch of its own, in
/// order.
async fn apply_each(db: &TestDb, cmd_id: &str, updates: &[(CommandStatus, DateTime<Utc>)]) {
    for (status, at) in updates {
        apply(&db.pool, &[StatusUpdate::new(cmd_id, *status, *at)])
            .await
            .unwrap();
    }
}

/// Checks that command `cmd_id` has both marks, the send not after the
/// acknowledgement; answers its status.
async fn sent_not_after_ack(db: &TestDb, cmd_id: &str) -> String {
    let (status, sent_at, ack_at): (String, DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT status, sent_at, ack_at FROM commands WHERE cmd_id = $1")
            .bind(cmd_id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(sent_at <= ack_at, "sent {sent_at} after ack {ack_at}");
    status
}

async fn times(db: &TestDb, cmd_id: &str) -> (String, [Option<DateTime<Utc>>; 3]) {
    let (status, sent, ack, finished): (String, _, _, _) = sqlx::query_as(
        "SELECT status, sent_at, ack_at, finished_at FROM commands WHERE cmd_id = $1",
    )
    .bind(cmd_id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    (status, [sent, ack, finished])
}

#[tokio::test]
async fn a_late_sent_mark_is_never_after_the_answer() {
    let db = TestDb::new().await;
    let ack = Utc::now();
    let sent = ack + Duration::milliseconds(3);
    insert(&db, "c1").await;
    apply_each(&db, "c1", &[(Ack, ack), (Sent, sent)]).await;
    assert_eq!(sent_not_after_ack(&db, "c1").await, "ACK");

    // Both in one batch, the SENT mark's clock read last: the same.
    insert(&db, "c2").await;
    apply(
        &db.pool,
        &[
            StatusUpdate::new("c2", Ack, ack),
            StatusUpdate::new("c2", Sent, sent),
        ],
    )
    .await
    .unwrap();
    sent_not_after_ack(&db, "c2").await;
}

#[tokio::test]
async fn an_answer_read_before_the_committed_sent_mark_pulls_the_send_back() {
    let db = TestDb::new().await;
    let answer = Utc::now().trunc_subsecs(6);
    let sent = answer + Duration::milliseconds(3);

    // SENT committed first, the node's ACK (arrived earlier) applied after.
    insert(&db, "c3").await;
    apply_each(&db, "c3", &[(Sent, sent), (Ack, answer)]).await;
    let (status, [sent_at, ack_at, _]) = times(&db, "c3").await;
    assert_eq!(status, "ACK");
    assert_eq!(ack_at, Some(answer));
    assert!(sent_at <= ack_at, "sent {sent_at:?} after ack {ack_at:?}");

    // SENT committed first, then DONE without an ACK.
    insert(&db, "c4").await;
    apply_each(&db, "c4", &[(Sent, sent), (Done, answer)]).await;
    let (status, [sent_at, ack_at, finished_at]) = times(&db, "c4").await;
    assert_eq!(status, "DONE");
    assert_eq!(ack_at, None);
    assert_eq!(finished_at, Some(answer));
    assert!(
        sent_at <= finished_at,
        "sent {sent_at:?} after done {finished_at:?}"
    );

    // An ACK dated after the DONE (two consumers' clocks): never after it.
    insert(&db, "c5").await;
    let done = answer - Duration::milliseconds(1);
    apply_each(&db, "c5", &[(Sent, sent), (Done, done), (Ack, answer)]).await;
    let (status, [sent_at, ack_at, finished_at]) = times(&db, "c5").await;
    assert_eq!(status, "DONE");
    assert!(
        sent_at <= finished_at && (ack_at.is_none() || ack_at <= finished_at),
        "sent {sent_at:?} ack {ack_at:?} done {finished_at:?}"
    );
}
