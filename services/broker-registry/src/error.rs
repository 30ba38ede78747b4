//! The API's errors: the one [`common::runtime::api_error::ApiError`] of every
//! service, and how the registry's broker changes map into it.

pub use common::runtime::api_error::ApiError;

use crate::registry::ChangeError;

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Conflict(message) => ApiError::conflict("broker_exists", message),
            e @ ChangeError::NotFound(_) => ApiError::not_found("broker_not_found", e.to_string()),
            ChangeError::Db(e) => ApiError::from(e),
        }
    }
}
