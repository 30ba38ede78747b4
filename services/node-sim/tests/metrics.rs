//! What the simulator's own nodes record in its metrics.
//!
//! The Prometheus recorder is process-wide: every test in a binary records
//! into the same one, and node-sim's counters carry no node label. This
//! binary holds one test, so the counts it reads are its own nodes'. Keep it
//! to one test.

mod support;

use node_sim::metrics as m;
use support::{TestSim, WAIT};
use testkit::{eventually, metric_sum};

#[tokio::test]
async fn published_telemetry_is_counted() {
    let mut sim = TestSim::connected().await;
    let base = sim.url("");
    let scrape = || testkit::scrape_metrics(&base);

    // Telemetry seen on the broker was published and acknowledged: the
    // counter catches up with it (the PUBACK may trail the delivery).
    let seen = eventually(WAIT, || async {
        let n = sim.recorder.with_suffix("/telemetry").len();
        (n >= 5).then_some(n)
    })
    .await
    .expect("telemetry on the broker");
    let counted = eventually(WAIT, || async {
        let text = scrape().await;
        let published = metric_sum(&text, m::TELEMETRY_PUBLISHED);
        (published >= seen as f64).then_some(text)
    })
    .await;
    assert!(
        counted.is_some(),
        "{seen} telemetry messages seen, published counter:\n{}",
        scrape().await
    );
    let text = counted.unwrap();
    assert!(
        metric_sum(&text, m::TELEMETRY_GENERATED) >= metric_sum(&text, m::TELEMETRY_PUBLISHED),
        "every published reading was generated:\n{text}"
    );

    sim.stop().await;
}
