//! Bearer-token auth for the `/bridge` routes, when `BRIDGE_API_TOKEN` is set
//! (shared with device-registry: see [`common::auth`]).

pub use common::auth::{Access, ApiToken, require_token};
