//! The API's errors: the one [`common::runtime::api_error::ApiError`] of every
//! service, and how the registry's operation errors map into it.

pub use common::runtime::api_error::ApiError;

use crate::pushes::OpError;

impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let message = e.to_string();
        match e {
            OpError::NodeNotFound(_) => ApiError::not_found("node_not_found", message),
            OpError::GreenhouseNotFound(_) => ApiError::not_found("greenhouse_not_found", message),
            OpError::ZoneNotFound(..) => ApiError::not_found("zone_not_found", message),
            OpError::UidTaken(_) => ApiError::conflict("uid_taken", message),
            OpError::Decommissioned(_) => ApiError::conflict("node_decommissioned", message),
            OpError::NotBound(_) => ApiError::conflict("node_not_bound", message),
            OpError::Unreachable(..) => ApiError::unavailable("broker_unavailable", message),
            OpError::Accounts(_) => ApiError::unavailable("broker_account_failed", message),
            OpError::BadConfig(_) => ApiError::internal(message),
            OpError::Db(e) => ApiError::from(e),
        }
    }
}
