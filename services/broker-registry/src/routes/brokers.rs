//! `GET/POST /api/brokers`, `GET/PATCH /api/brokers/{id}`: the broker list
//! with status, load and node counts; add, disable, drain, change role.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use common::placement::balance::Role;
use common::runtime::api_error::ApiResult;
use common::runtime::api_error::ok;
use serde::Deserialize;
use serde_json::{Value, json};

use common::runtime::http::check_text;
use common::store::{broker_health_samples, brokers};

use super::{ApiState, MAX_ID_CHARS, parse_body};
use crate::audit::Operator;
use crate::error::ApiError;
use crate::registry::{self, BrokerChange, NewBroker};

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/api/brokers", get(list).post(add))
        .route("/api/brokers/{id}", get(one).patch(change))
}

async fn list(State(s): State<ApiState>) -> ApiResult {
    Ok(ok(brokers::overview(&s.pool).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBody {
    id: String,
    url: String,
    #[serde(default)]
    role: Option<String>,
}

/// How many of a broker's latest health samples `GET /api/brokers/{id}` shows.
const SAMPLES_SHOWN: i64 = 20;

/// The longest broker url.
const MAX_URL_CHARS: usize = 512;

fn role(text: &str) -> Result<Role, ApiError> {
    text.parse()
        .map_err(|e: String| ApiError::bad_request("invalid_role", e))
}

async fn add(
    State(s): State<ApiState>,
    who: Operator,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: AddBody = parse_body(&body)?;
    check_text("id", &body.id, MAX_ID_CHARS)?;
    // A url is a UNIQUE key: a b-tree entry must stay well under 2.7 kB.
    check_text("url", &body.url, MAX_URL_CHARS)?;
    registry::check_id(&body.id).map_err(|e| ApiError::bad_request("invalid_id", e))?;
    common::mqtt::parse_broker_url(&body.url)
        .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))?;
    let new = NewBroker {
        id: body.id.trim().to_owned(),
        url: body.url.trim().to_owned(),
        role: body
            .role
            .as_deref()
            .map(role)
            .transpose()?
            .unwrap_or(Role::Primary),
    };
    registry::add(&s.pool, &new).await?;
    who.record(
        &s.pool,
        "broker.add",
        Some(&new.id),
        json!({ "url": new.url, "role": new.role.as_str() }),
    )
    .await?;
    Ok((StatusCode::CREATED, ok(json!({ "id": new.id }))))
}

async fn one(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult {
    check_text("id", &id, MAX_ID_CHARS)?;
    let broker = brokers::overview(&s.pool)
        .await?
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| {
            ApiError::not_found("broker_not_found", format!("broker `{id}` does not exist"))
        })?;
    let samples = broker_health_samples::latest_json(&s.pool, &id, SAMPLES_SHOWN).await?;
    Ok(ok(json!({ "broker": broker, "samples": samples })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    draining: Option<bool>,
    #[serde(default)]
    role: Option<String>,
}

async fn change(
    State(s): State<ApiState>,
    who: Operator,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    check_text("id", &id, MAX_ID_CHARS)?;
    let body: ChangeBody = parse_body(&body)?;
    let change = BrokerChange {
        enabled: body.enabled,
        draining: body.draining,
        role: body.role.as_deref().map(role).transpose()?,
    };
    if change.enabled.is_none() && change.draining.is_none() && change.role.is_none() {
        return Err(ApiError::bad_request(
            "empty_change",
            "give at least one of `enabled`, `draining`, `role`",
        ));
    }
    registry::update(&s.pool, &id, &change).await?;
    let actions = [
        change.enabled.map(|on| {
            if on {
                "broker.enable"
            } else {
                "broker.disable"
            }
        }),
        change
            .draining
            .map(|on| if on { "broker.drain" } else { "broker.undrain" }),
        change.role.map(|_| "broker.role"),
    ];
    for action in actions.into_iter().flatten() {
        let detail = json!({
            "enabled": change.enabled,
            "draining": change.draining,
            "role": change.role.map(Role::as_str),
        });
        who.record(&s.pool, action, Some(&id), detail).await?;
    }
    Ok(ok(json!({ "id": id })))
}
