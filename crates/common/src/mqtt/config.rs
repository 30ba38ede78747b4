//! How to reach one broker and behave on it: its URL parsed, and the
//! connection's settings (client id, login, TLS, session, timeouts).

use std::time::Duration;

use rumqttc::v5::MqttOptions;
use rumqttc::v5::mqttbytes::v5::LastWill;
use secrecy::{ExposeSecret, SecretString};

use crate::mqtt::error::MqttError;

/// Host, port and TLS flag of an `mqtt://host:port` / `mqtts://host:port` URL
/// (the port defaults to 1883, 8883 with TLS; a trailing `/` is ignored).
pub fn parse_broker_url(url: &str) -> Result<(String, u16, bool), MqttError> {
    let bad = || MqttError::BadUrl(url.to_owned());
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(bad());
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() || host.contains('/') || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port, tls))
}

/// How to reach one broker and behave on it.
#[derive(Debug, Clone)]
pub struct MqttConfig {
    /// The broker's id in the `brokers` table, e.g. `mqtt1`; a metrics label.
    pub broker_id: String,
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    /// Must be unique per connection on the broker.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub keep_alive: Duration,
    /// Published by the broker when this connection dies without a DISCONNECT.
    pub last_will: Option<LastWill>,
    /// The longest `publish` waits for a connection and the PUBACK.
    pub publish_timeout: Duration,
    /// Incoming QoS 1 messages are acknowledged only by [`MqttConnection::ack`].
    pub manual_acks: bool,
    /// QoS 1 publishes that may wait for their PUBACK at once; more wait for room.
    pub max_pending: usize,
    /// MQTT 5 session expiry in seconds. `None` (the default): a clean session
    /// on every connect. `Some(secs)`: the broker keeps the session (its
    /// subscriptions and the QoS 1 messages not yet acknowledged) for `secs`
    /// after a disconnect, so `client_id` must then be stable per instance.
    pub session_expiry: Option<u32>,
    /// Upper limit on QoS 1 publishes rumqttc keeps in flight; the broker's
    /// receive maximum still applies. `None`: rumqttc's own (65535). rumqttc
    /// allocates one slot per possible in-flight publish up front (a few MB
    /// per connection at 65535), which thousands of simulated nodes cannot
    /// afford.
    pub max_inflight: Option<u16>,
    /// TCP_NODELAY (the default): small packets leave at once. Off, the
    /// kernel may coalesce writes made while earlier ones are unacknowledged
    /// (Nagle): fewer, fuller segments for a connection whose latency does
    /// not matter, such as history-logger's stream of PUBACKs.
    pub nodelay: bool,
}

/// The longest [`MqttConnection::disconnect`] waits for its DISCONNECT to
/// leave.
pub const DISCONNECT_WAIT: Duration = Duration::from_secs(2);

impl MqttConfig {
    /// Sensible defaults for one broker; `client_id` gets a random suffix.
    pub fn new(broker_id: &str, url: &str, client_prefix: &str) -> Self {
        MqttConfig {
            broker_id: broker_id.to_owned(),
            url: url.to_owned(),
            client_id: format!(
                "{client_prefix}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            username: None,
            password: None,
            keep_alive: Duration::from_secs(15),
            last_will: None,
            publish_timeout: Duration::from_secs(5),
            manual_acks: false,
            max_pending: 4096,
            session_expiry: None,
            max_inflight: None,
            nodelay: true,
        }
    }

    /// Fills credentials, TLS and the publish timeout from the shared settings.
    pub fn with_settings(mut self, s: &crate::settings::Settings) -> Self {
        self.username = s.mqtt.user.clone();
        self.password = s.mqtt.pass.clone();
        self.publish_timeout = s.mqtt.publish_timeout();
        self
    }

    pub(crate) fn options(&self) -> Result<MqttOptions, MqttError> {
        let (host, port, tls) = parse_broker_url(&self.url)?;
        let mut o = MqttOptions::new(self.client_id.clone(), host, port);
        o.set_keep_alive(self.keep_alive)
            .set_clean_start(true)
            .set_manual_acks(self.manual_acks)
            .set_connection_timeout(5)
            // Room for every tracked publish to be re-queued at once after a
            // reconnect, plus subscribes and acks, without ever blocking.
            .set_request_channel_capacity(self.max_pending * 2 + 256)
            .set_max_packet_size(Some(1024 * 1024));
        if let Some(limit) = self.max_inflight {
            o.set_outgoing_inflight_upper_limit(limit);
        }
        if let Some(secs) = self.session_expiry {
            o.set_clean_start(false)
                .set_session_expiry_interval(Some(secs));
        }
        // Commands and acknowledgements are small packets: without
        // TCP_NODELAY, Nagle's algorithm holds them for the peer's delayed
        // ACK and a publish round trip takes tens of milliseconds.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(self.nodelay);
        network.set_connection_timeout(5);
        o.set_network_options(network);
        if let Some(user) = &self.username {
            let pass = self
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            o.set_credentials(user.clone(), pass);
        }
        if let Some(will) = &self.last_will {
            o.set_last_will(will.clone());
        }
        if tls {
            let _ = rustls::crypto::ring::default_provider().install_default();
            o.set_transport(rumqttc::Transport::tls_with_default_config());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884, false)
        );
        assert_eq!(
            parse_broker_url("mqtts://broker.example").unwrap(),
            ("broker.example".into(), 8883, true)
        );
        assert_eq!(parse_broker_url("mqtt://h").unwrap().1, 1883);
        for bad in [
            "tcp://h:1",
            "mqtt://:1883",
            "mqtt://h:0",
            "mqtt://h:99999",
            "h:1883",
        ] {
            assert!(parse_broker_url(bad).is_err(), "{bad}");
        }
    }
}
