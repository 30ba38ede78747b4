//! The variables a service under test starts with (its database, a test
//! broker logged in as the backend account, HTTP on port 0, and the test's
//! own), and the settings read from them.

use std::collections::HashMap;

use common::settings::Settings;

use crate::broker::backend_login;

/// Sets `more` in `vars`: each replaces a variable of the same name, or is
/// added.
pub fn set_vars(vars: &mut Vec<(String, String)>, more: &[(&str, &str)]) {
    for (name, value) in more {
        vars.retain(|(k, _)| k != name);
        vars.push(((*name).to_owned(), (*value).to_owned()));
    }
}

/// A service's variables in a test: `DATABASE_URL` = `db_url`, the broker on
/// 127.0.0.1:`mqtt_port` logged in as [`backend_login`], `HTTP_PORT` 0; then
/// `more` ([`set_vars`]).
pub fn service_vars(db_url: &str, mqtt_port: u16, more: &[(&str, &str)]) -> Vec<(String, String)> {
    let who = backend_login();
    let mut vars = vec![
        ("DATABASE_URL".to_owned(), db_url.to_owned()),
        ("MQTT_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("MQTT_PORT".to_owned(), mqtt_port.to_string()),
        ("MQTT_USER".to_owned(), who.user),
        ("MQTT_PASS".to_owned(), who.pass),
        ("HTTP_PORT".to_owned(), "0".to_owned()),
    ];
    set_vars(&mut vars, more);
    vars
}

/// The shared settings and a service's own (read by `own`, its `from_vars`)
/// from `vars`; panics when either is invalid.
pub fn settings<S, E: std::fmt::Debug>(
    vars: &[(String, String)],
    own: impl FnOnce(Option<HashMap<String, String>>) -> Result<S, E>,
) -> (Settings, S) {
    let map = common::settings::env_vars(vars);
    (
        Settings::from_vars(map.clone()).expect("test settings are valid"),
        own(map).expect("the service's test settings are valid"),
    )
}
