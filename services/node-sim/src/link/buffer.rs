//! The link's offline buffer: readings kept while cut off (at most
//! [`BUFFER_PACKETS`]), the ones acknowledged within [`REPLAY_WINDOW`]
//! before a drop put back, and all of it sent after a reconnect.

use common::mqtt::MqttConnection;
use tokio::time::Instant;
use tracing::debug;

use super::{BUFFER_PACKETS, NodeLink, Packet, REPLAY_WINDOW, lock};
use crate::metrics as m;

impl NodeLink {
    /// Hands one reading over: published now when connected (true once the
    /// broker acknowledged it), else — or when the publish fails — kept in
    /// the offline buffer for the next connection (false).
    pub async fn send_telemetry(&self, topic: String, payload: Vec<u8>) -> bool {
        metrics::counter!(m::TELEMETRY_GENERATED).increment(1);
        let packet = Packet {
            topic,
            payload: payload.into(),
        };
        if !self.is_connected() {
            self.buffer(packet, false);
            return false;
        }
        let connection = self.connection();
        // A reading whose publish failed after the connect's flush (it was in
        // flight on the connection that died) goes out first, oldest first.
        if self.buffered() > 0 {
            self.flush(&connection).await;
            if self.buffered() > 0 {
                self.buffer(packet, false);
                return false;
            }
        }
        match connection
            .publish(&packet.topic, packet.payload.clone(), false)
            .await
        {
            Ok(()) => {
                self.remember(packet);
                true
            }
            Err(e) => {
                debug!(node = %self.uid, error = %e, "Telemetry publish failed; buffered.");
                self.buffer(packet, false);
                false
            }
        }
    }

    /// Into the offline buffer (at the front for a replay), dropping the
    /// oldest beyond [`BUFFER_PACKETS`].
    fn buffer(&self, packet: Packet, front: bool) {
        let mut b = lock(&self.buffers);
        if front {
            b.offline.push_front(packet);
        } else {
            b.offline.push_back(packet);
        }
        while b.offline.len() > BUFFER_PACKETS {
            b.offline.pop_front();
            metrics::counter!(m::TELEMETRY_BUFFER_DROPPED).increment(1);
        }
    }

    /// Keeps an acknowledged reading for the replay window.
    fn remember(&self, packet: Packet) {
        let now = Instant::now();
        let mut b = lock(&self.buffers);
        while b
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > REPLAY_WINDOW)
        {
            b.recent.pop_front();
        }
        b.recent.push_back((now, packet));
    }

    /// The connection dropped: what it acknowledged lately goes out again.
    pub(super) fn replay_recent(&self) {
        let now = Instant::now();
        let mut b = lock(&self.buffers);
        let recent: Vec<Packet> = b
            .recent
            .drain(..)
            .filter(|(at, _)| now.duration_since(*at) <= REPLAY_WINDOW)
            .map(|(_, p)| p)
            .collect();
        drop(b);
        for p in recent.into_iter().rev() {
            self.buffer(p, true);
        }
    }

    /// Sends the offline buffer on `connection`, oldest first, until it is
    /// empty or a publish fails (the packet goes back to the front).
    pub(super) async fn flush(&self, connection: &MqttConnection) {
        loop {
            let Some(packet) = lock(&self.buffers).offline.pop_front() else {
                return;
            };
            match connection
                .publish(&packet.topic, packet.payload.clone(), false)
                .await
            {
                Ok(()) => {
                    metrics::counter!(m::TELEMETRY_PUBLISHED).increment(1);
                    self.remember(packet);
                }
                Err(_) => {
                    self.buffer(packet, true);
                    return;
                }
            }
        }
    }
}
