//! What the API asks of a node, carried out: bind (a fresh secret, its
//! broker password issued or kept, its broker account created, the target
//! NodeConfig pushed where the node listens, a pending bind), unbind (a
//! temp-namespace NodeConfig with the provision login), a config push
//! again, and decommission (its broker account removed). Routes stay thin:
//! each is one call here.

use std::time::Duration;

use common::metrics as m;
use common::mqtt::MqttConnection;
use common::mqtt::pool::BrokerPool;
use common::placement::node_config::{self, NodeConfigError, Place};
use common::store::node_binds::{self, NewBind};
use common::store::nodes::{self, Lifecycle, NodeView};
use common::store::{brokers, greenhouses, zones};
use proto::payloads::{NodeConfig, NodeConfigChannel};
use proto::topics::{TEMP_GREENHOUSE, TEMP_ZONE, TopicKind, node_topic, temp_node_topic};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use tracing::{info, warn};

use crate::accounts::{self, Accounts};
use crate::binds;
use crate::lifecycle::{self, BindPlan, BindView};
use crate::{channels, lifecycle::BindRefusal};

/// Why an operation was refused; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("no node with uid or hardware id `{0}`")]
    NodeNotFound(String),
    #[error("no greenhouse `{0}`")]
    GreenhouseNotFound(String),
    #[error("no zone `{0}` in greenhouse `{1}`")]
    ZoneNotFound(String, String),
    #[error(
        "uid `{0}` belongs to another node (or to another node's pending bind); choose another `node_uid`"
    )]
    UidTaken(String),
    #[error("node `{0}` is decommissioned")]
    Decommissioned(String),
    #[error("node `{0}` is not bound to a zone and has no pending bind")]
    NotBound(String),
    #[error("no broker took the NodeConfig for `{0}`: {1}")]
    Unreachable(String, String),
    #[error("the node's broker account could not be created: {0}")]
    Accounts(String),
    #[error("the NodeConfig could not be built: {0}")]
    BadConfig(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A bind request, checked.
#[derive(Debug, Clone)]
pub struct BindRequest {
    pub greenhouse_uid: String,
    pub zone_uid: String,
    pub node_uid: Option<String>,
    pub name: Option<String>,
    pub channels: Option<Vec<NodeConfigChannel>>,
}

/// What a bind request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindOutcome {
    /// The config is out; the bind waits for the node's config_report.
    Pending { retried: bool },
    /// The node was in that zone under that uid already.
    AlreadyBound,
}

/// Everything the operations need; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    pub pool: PgPool,
    pub brokers: BrokerPool,
    pub default_secret: SecretString,
    pub default_broker_url: String,
    pub bind_ttl: Duration,
    /// The node accounts on the brokers; `None`: not managed.
    pub accounts: Option<Accounts>,
    /// The login of unbound nodes (`MQTT_PROVISION_USER` / `_PASS`), put in
    /// an unbind's NodeConfig.
    pub provision_login: Option<(String, SecretString)>,
}

impl From<NodeConfigError> for OpError {
    fn from(e: NodeConfigError) -> Self {
        match e {
            NodeConfigError::Db(e) => OpError::Db(e),
            NodeConfigError::NodeNotFound(id) => OpError::NodeNotFound(id.to_string()),
            other => OpError::BadConfig(other.to_string()),
        }
    }
}

/// The topic the node listens on for its config now: its namespace when
/// bound, else the temp namespace under its hardware id (or uid).
fn current_config_topic(node: &NodeView) -> String {
    match (&node.gh_uid, &node.zone_uid) {
        (Some(gh), Some(zone)) => node_topic(gh, zone, &node.uid, TopicKind::Config),
        _ => temp_node_topic(
            node.hardware_id.as_deref().unwrap_or(&node.uid),
            TopicKind::Config,
        ),
    }
}

impl Registry {
    /// Creates the broker accounts node `node_id` lacks (before its
    /// NodeConfig goes out).
    async fn create_accounts(&self, node: &NodeView) -> Result<(), OpError> {
        let Some(accounts) = &self.accounts else {
            return Ok(());
        };
        accounts.create_missing(node.id).await.map_err(|e| {
            warn!(node = %node.uid, error = %e, "Could not create the node's broker account.");
            OpError::Accounts(e)
        })
    }

    /// Brings the node's broker accounts in line once it has its config.
    fn settle_accounts(&self, node_id: i64) {
        if let Some(accounts) = &self.accounts {
            accounts.settle_later(node_id);
        }
    }

    async fn node(&self, key: &str) -> Result<NodeView, OpError> {
        nodes::find(&self.pool, key)
            .await?
            .ok_or_else(|| OpError::NodeNotFound(key.to_owned()))
    }

    /// The connections to publish a node's config on and the broker URL the
    /// config names: the node's observed broker, or (unknown) every broker
    /// with the default broker's URL.
    /// The NodeConfig for `node` at `place` (`None`: where it is), naming
    /// `broker_url`, signed with its secret or the default one.
    async fn config(
        &self,
        node: &NodeView,
        place: Option<Place>,
        broker_url: &str,
    ) -> Result<NodeConfig, OpError> {
        Ok(node_config::build(
            &self.pool,
            node.id,
            place,
            broker_url,
            self.default_secret.expose_secret(),
        )
        .await?)
    }

    async fn route(&self, node: &NodeView) -> Result<(Vec<MqttConnection>, String), OpError> {
        if let Some(id) = &node.observed_broker_id {
            let url = brokers::url(&self.pool, id)
                .await?
                .unwrap_or_else(|| self.default_broker_url.clone());
            let connection = self.brokers.get(id).ok_or_else(|| {
                OpError::Unreachable(node.uid.clone(), format!("not connected to broker {id}"))
            })?;
            return Ok((vec![connection], url));
        }
        Ok((self.brokers.all(), self.default_broker_url.clone()))
    }

    /// Publishes `config` on `topic` through `connections`; Ok when at least
    /// one broker took it.
    async fn publish(
        &self,
        node: &NodeView,
        connections: &[MqttConnection],
        topic: &str,
        config: &NodeConfig,
        reason: &'static str,
    ) -> Result<(), OpError> {
        let mut errors = Vec::new();
        for connection in connections {
            match node_config::publish(connection, topic, config).await {
                Ok(()) => {}
                Err(e) => errors.push(format!("{}: {e}", connection.broker_id())),
            }
        }
        if connections.is_empty() || errors.len() == connections.len() {
            metrics::counter!(m::DEVICE_CONFIG_PUSHES, "reason" => reason, "outcome" => "failed")
                .increment(1);
            let why = if errors.is_empty() {
                "no broker connected".into()
            } else {
                errors.join("; ")
            };
            warn!(node = %node.uid, topic, error = %why, "Could not publish a NodeConfig.");
            return Err(OpError::Unreachable(node.uid.clone(), why));
        }
        metrics::counter!(m::DEVICE_CONFIG_PUSHES, "reason" => reason, "outcome" => "ok")
            .increment(1);
        Ok(())
    }

    /// Binds the node to a zone: see the module header.
    pub async fn bind(
        &self,
        key: &str,
        req: &BindRequest,
    ) -> Result<(BindOutcome, NodeView), OpError> {
        let node = self.node(key).await?;
        let greenhouse_id = greenhouses::id_of(&self.pool, &req.greenhouse_uid)
            .await?
            .ok_or_else(|| OpError::GreenhouseNotFound(req.greenhouse_uid.clone()))?;
        let zone_id = zones::id_in(&self.pool, greenhouse_id, &req.zone_uid)
            .await?
            .ok_or_else(|| {
                OpError::ZoneNotFound(req.zone_uid.clone(), req.greenhouse_uid.clone())
            })?;
        let uid = req.node_uid.clone().unwrap_or_else(|| node.uid.clone());
        if nodes::uid_taken(&self.pool, &uid, node.id).await? {
            return Err(OpError::UidTaken(uid));
        }
        let pending = node_binds::pending(&self.pool, node.id).await?;
        let view = BindView {
            lifecycle: node.lifecycle,
            zone_id: node.zone_id,
            uid: node.uid.clone(),
            pending: pending
                .as_ref()
                .map(|b| (b.id, b.zone_id, b.node_uid.clone())),
        };
        let plan = lifecycle::plan_bind(&view, zone_id, &uid).map_err(|e| match e {
            BindRefusal::Decommissioned => OpError::Decommissioned(node.uid.clone()),
        })?;
        let (connections, broker_url) = self.route(&node).await?;
        match plan {
            BindPlan::AlreadyBound => {
                metrics::counter!(m::DEVICE_BINDS, "outcome" => "already_bound").increment(1);
                Ok((BindOutcome::AlreadyBound, node))
            }
            BindPlan::Retry(id) => {
                let bind = pending.expect("a retry has a pending bind");
                let config: NodeConfig = serde_json::from_value(bind.config.clone())
                    .map_err(|e| OpError::BadConfig(e.to_string()))?;
                self.create_accounts(&node).await?;
                self.publish(&node, &connections, &bind.config_topic, &config, "bind")
                    .await?;
                self.settle_accounts(node.id);
                node_binds::extend(&self.pool, id, self.bind_ttl).await?;
                metrics::counter!(m::DEVICE_BINDS, "outcome" => "retried").increment(1);
                info!(node = %node.uid, zone = %req.zone_uid, "Bind retried: NodeConfig published again.");
                Ok((
                    BindOutcome::Pending { retried: true },
                    self.node(&node.uid).await?,
                ))
            }
            BindPlan::New { .. } => {
                let place = Place {
                    gh_uid: req.greenhouse_uid.clone(),
                    zone_uid: req.zone_uid.clone(),
                    node_uid: uid.clone(),
                };
                let secret = lifecycle::new_secret();
                // Kept across rebinds: the node's account stays the same.
                nodes::issue_mqtt_password(&self.pool, node.id, &accounts::new_password()).await?;
                let mut config = self.config(&node, Some(place), &broker_url).await?;
                config.node_secret = Some(secret.clone());
                if let Some(requested) = &req.channels {
                    config.channels = requested.clone();
                } else if config.channels.is_empty() {
                    config.channels = channels::for_bind(&node.node_type, &node.unbound_readings);
                }
                // Where the node listens now: a replaced pending rebind's
                // topic (the node has not moved yet), else its current one.
                let topic = pending
                    .as_ref()
                    .map(|b| b.config_topic.clone())
                    .unwrap_or_else(|| current_config_topic(&node));
                let stored = serde_json::to_value(&config).expect("a NodeConfig always serialises");
                let id = binds::open(
                    &self.pool,
                    &NewBind {
                        node_id: node.id,
                        zone_id,
                        node_uid: &uid,
                        name: req.name.as_deref(),
                        secret: &secret,
                        config: &stored,
                        config_topic: &topic,
                        broker_id: node.observed_broker_id.as_deref(),
                        ttl: self.bind_ttl,
                    },
                )
                .await?;
                if let Err(e) = self.create_accounts(&node).await {
                    node_binds::cancel(&self.pool, id).await?;
                    metrics::counter!(m::DEVICE_BINDS, "outcome" => "account_failed").increment(1);
                    return Err(e);
                }
                if let Err(e) = self
                    .publish(&node, &connections, &topic, &config, "bind")
                    .await
                {
                    node_binds::cancel(&self.pool, id).await?;
                    metrics::counter!(m::DEVICE_BINDS, "outcome" => "publish_failed").increment(1);
                    return Err(e);
                }
                binds::started(&self.pool, id, node.id).await?;
                self.settle_accounts(node.id);
                metrics::counter!(m::DEVICE_BINDS, "outcome" => "requested").increment(1);
                info!(node = %node.uid, target_uid = %uid, greenhouse = %req.greenhouse_uid, zone = %req.zone_uid, topic = %topic,
                    "Bind requested: NodeConfig published; waiting for the node's config_report from the target namespace.");
                Ok((
                    BindOutcome::Pending { retried: false },
                    self.node(&node.uid).await?,
                ))
            }
        }
    }

    /// Sends the node back to the temp namespace and out of its zone.
    pub async fn unbind(&self, key: &str) -> Result<NodeView, OpError> {
        let node = self.node(key).await?;
        if node.lifecycle == Lifecycle::Decommissioned {
            return Err(OpError::Decommissioned(node.uid.clone()));
        }
        if node.zone_id.is_none() {
            if !node_binds::cancel_pending(&self.pool, node.id).await? {
                return Err(OpError::NotBound(node.uid.clone()));
            }
            metrics::counter!(m::DEVICE_BINDS, "outcome" => "cancelled").increment(1);
            info!(node = %node.uid, "Pending bind cancelled by an unbind.");
            return self.node(&node.uid).await;
        }
        let (connections, broker_url) = self.route(&node).await?;
        let place = Place {
            gh_uid: TEMP_GREENHOUSE.into(),
            zone_uid: TEMP_ZONE.into(),
            node_uid: node.uid.clone(),
        };
        let mut config = self.config(&node, Some(place), &broker_url).await?;
        match &self.provision_login {
            Some((user, pass)) => {
                node_config::set_login(&mut config.mqtt, user, pass.expose_secret())
            }
            None => {
                warn!(node = %node.uid, "MQTT_PROVISION_PASS is not set: the unbind's NodeConfig carries no broker login.")
            }
        }
        let topic = current_config_topic(&node);
        self.publish(&node, &connections, &topic, &config, "unbind")
            .await?;
        let mut tx = self.pool.begin().await?;
        node_binds::cancel_pending(&mut *tx, node.id).await?;
        nodes::clear_zone(&mut *tx, node.id).await?;
        tx.commit().await?;
        self.settle_accounts(node.id);
        info!(node = %node.uid, topic = %topic, "Node unbound: temp-namespace NodeConfig published, zone cleared.");
        self.node(&node.uid).await
    }

    /// Publishes the node's current config again where it listens.
    pub async fn push_config(&self, key: &str) -> Result<NodeView, OpError> {
        let node = self.node(key).await?;
        if node.lifecycle == Lifecycle::Decommissioned {
            return Err(OpError::Decommissioned(node.uid.clone()));
        }
        let (connections, broker_url) = self.route(&node).await?;
        let config = self.config(&node, None, &broker_url).await?;
        let topic = current_config_topic(&node);
        self.publish(&node, &connections, &topic, &config, "push")
            .await?;
        info!(node = %node.uid, topic = %topic, "NodeConfig pushed again.");
        Ok(node)
    }

    /// Retires the node (idempotent): out of its zone, pending bind cancelled.
    pub async fn decommission(&self, key: &str) -> Result<NodeView, OpError> {
        let node = self.node(key).await?;
        if node.lifecycle != Lifecycle::Decommissioned {
            let mut tx = self.pool.begin().await?;
            node_binds::cancel_pending(&mut *tx, node.id).await?;
            nodes::decommission(&mut *tx, node.id).await?;
            tx.commit().await?;
            if let Some(accounts) = &self.accounts {
                accounts.settle(node.id).await;
            }
            info!(node = %node.uid, hardware_id = ?node.hardware_id, "Node decommissioned.");
        }
        self.node(&node.uid).await
    }
}
