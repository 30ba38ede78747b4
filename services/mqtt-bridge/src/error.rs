//! The API's errors: the one [`common::runtime::api_error::ApiError`] of every
//! service (400/422 bad body, 404 unknown zone, node, channel or command,
//! 409 a `cmd_id` used before for another request, 503 no broker accepted
//! the command and its row is SEND_FAILED, 500 opaque).

pub use common::runtime::api_error::ApiError;
