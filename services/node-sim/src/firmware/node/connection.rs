//! Where a firmware-mode node connects and how it leaves: the broker it
//! boots on, the connect loop that follows its config from broker to
//! broker, the connection with its last will, login and subscriptions,
//! and the clean leave (DISCONNECT, so the broker keeps the will).

use std::sync::Arc;
use std::time::Duration;

use common::mqtt::{Inbound, MqttConfig, MqttConnection, MqttError};
use common::placement::node_config;
use common::{LastWill, QoS};
use proto::payloads::{LWT_PAYLOAD, NodeConfig};
use proto::topics::{TIME_RESPONSE, TopicKind, node_topic};
use secrecy::SecretString;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Current, INBOX_CAPACITY, Inner, NODE_MAX_INFLIGHT, Next, RETRY_CONNECT, STOP_GRACE, lock,
};
use crate::firmware::config::{Namespace, broker_url};

impl Inner {
    /// The broker it boots on: its saved config's, else its entry of the list.
    pub(super) fn boot_url(&self) -> String {
        lock(&self.config)
            .as_ref()
            .and_then(broker_url)
            .unwrap_or_else(|| {
                crate::settings::broker_for(&self.ctx.broker_urls, self.hardware.index).to_owned()
            })
    }

    pub(super) async fn run(self: Arc<Self>) {
        let mut url = self.boot_url();
        loop {
            let (connection, inbox) = match self.connect(&url) {
                Ok(c) => c,
                Err(e) => {
                    warn!(hardware_id = %self.hardware_id, url, error = %e, "Cannot connect; retrying.");
                    tokio::select! {
                        _ = self.loops.cancelled() => return,
                        _ = tokio::time::sleep(RETRY_CONNECT) => continue,
                    }
                }
            };
            match self.session(&connection, inbox).await {
                Next::Stop => return,
                Next::Reconnect(next) => {
                    let old = lock(&self.current).take();
                    if let Some(old) = old {
                        leave(old).await;
                    }
                    self.online.send_replace(false);
                    url = next;
                }
            }
        }
    }

    /// A connection to `url` with the last will and subscriptions of the
    /// node's namespace now.
    fn connect(&self, url: &str) -> Result<(MqttConnection, mpsc::Receiver<Inbound>), MqttError> {
        let ns = self.namespace();
        let mut config = MqttConfig::new(&self.hardware_id, url, &self.hardware_id)
            .with_settings(&self.ctx.settings);
        let saved = lock(&self.config).clone();
        // A config's own login wins, as the node stores it (`username` /
        // `password`, or `user` / `pass`); an unbound node without one logs
        // in as the provision account, its client id = its hardware id (the
        // brokers' ACL holds it to its own temp namespace by that id).
        match saved.as_ref().and_then(|c| node_config::login(&c.mqtt)) {
            Some((user, pass)) => {
                config.username = Some(user);
                config.password = Some(SecretString::from(pass));
            }
            None if ns.is_temp() => {
                if let Some((user, pass)) = &self.ctx.provision_login {
                    config.username = Some(user.clone());
                    config.password = Some(pass.clone());
                    config.client_id = self.hardware_id.clone();
                }
            }
            None => {}
        }
        if let Some(k) = saved
            .as_ref()
            .and_then(NodeConfig::mqtt_target)
            .and_then(|m| m.keepalive)
            .filter(|k| *k > 0)
        {
            config.keep_alive = Duration::from_secs(u64::from(k));
        }
        config.max_inflight = Some(NODE_MAX_INFLIGHT);
        config.nodelay = self.ctx.tcp_nodelay;
        config.last_will = Some(LastWill::new(
            node_topic(&ns.gh, &ns.zone, &ns.node, TopicKind::Lwt),
            LWT_PAYLOAD,
            QoS::AtLeastOnce,
            true,
            None,
        ));
        // Room for a burst of commands: a full inbox holds up the
        // connection's reads, PUBACKs included.
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let stop = CancellationToken::new();
        let connection = MqttConnection::start(config, Some(tx), stop.clone())?;
        let temp = Namespace::temp(&self.hardware_id);
        let mut filters = vec![
            TIME_RESPONSE.to_owned(),
            node_topic(&temp.gh, &temp.zone, &temp.node, TopicKind::Config),
            format!("hydro/{}/{}/{}/+/command", ns.gh, ns.zone, ns.node),
        ];
        if !ns.is_temp() {
            filters.push(node_topic(&ns.gh, &ns.zone, &ns.node, TopicKind::Config));
        }
        for filter in &filters {
            connection.subscribe(filter, QoS::AtLeastOnce)?;
        }
        info!(hardware_id = %self.hardware_id, url, gh = %ns.gh, zone = %ns.zone, node = %ns.node, "Connecting.");
        *lock(&self.current) = Some(Current {
            connection: connection.clone(),
            url: url.to_owned(),
            stop,
        });
        Ok((connection, rx))
    }
}

/// Leaves a broker cleanly: lets the publishes in flight finish, sends
/// DISCONNECT and waits until it is processed, so the broker keeps the
/// last will to itself; then ends the connection.
pub(super) async fn leave(current: Current) {
    let deadline = Instant::now() + STOP_GRACE;
    while current.connection.pending_publishes() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if current.connection.is_connected() {
        current.connection.disconnect().await;
        let mut watch = current.connection.connected_watch();
        let _ = tokio::time::timeout(STOP_GRACE, watch.wait_for(|c| !*c)).await;
    }
    current.stop.cancel();
}
