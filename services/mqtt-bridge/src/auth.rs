//! Bearer-token auth for the `/bridge` routes, when `BRIDGE_API_TOKEN` is set
//! (shared with device-registry: see [`common::runtime::auth`]).

pub use common::runtime::auth::{Access, ApiToken, require_token};
