//! The registry's HTTP routes: the node API under `/api/nodes`.

pub mod body;
pub mod nodes;

use axum::Router;

use crate::pushes::Registry;

pub fn router(registry: Registry) -> Router {
    nodes::router().with_state(registry)
}
