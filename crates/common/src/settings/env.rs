//! Reading the environment: variables into typed settings (one rule for
//! every value, see [`from_env`]; a service's own settings are [`FromEnv`]),
//! secrets from files, and the one deserialiser the generic path lacks
//! ([`de_from_str`]).

use std::collections::HashMap;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A setting that is missing or wrong; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct SettingsError(pub String);

/// Refuses `value` of the variable `name` outside `lo..=hi` (NaN too):
/// "`NAME` must be between `lo` and `hi`".
pub fn within<T: PartialOrd + std::fmt::Display>(
    name: &str,
    value: T,
    lo: T,
    hi: T,
) -> Result<(), SettingsError> {
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(SettingsError(format!(
            "{name} must be between {lo} and {hi}"
        )))
    }
}

/// Refuses with `message` (which names the variable to fix) unless `ok`.
pub fn require(ok: bool, message: &str) -> Result<(), SettingsError> {
    if ok {
        Ok(())
    } else {
        Err(SettingsError(message.to_owned()))
    }
}

/// Reads environment variables (names case-insensitive, e.g. `MQTT_HOST` →
/// `mqtt_host`) into `T`. `vars` replaces the process environment in tests.
///
/// Every value is read by one rule, whatever its setting (see
/// [`super::text`]):
/// - a blank value (`X=`, or only spaces: what compose passes for an unset
///   `${X:-}`) is unset, so the setting takes its default (`None` for an
///   optional one);
/// - the value is trimmed; numbers (`1883`, `0.25`) and booleans (`1`,
///   `true`, `yes`, `on` and `0`, `false`, `no`, `off`, any case) are read
///   strictly (`yes` is never a number); enums by their serde names; an
///   `Option` is `Some` when set;
/// - a value that does not read is refused, and the error names the
///   variable (`mqtt_port: `abc` is not a whole number from 0 to 65535 (…)`).
///   A type with its own parser uses [`de_from_str`].
///
/// A secret variable `X` may be given as `X_FILE`, the path of a file that
/// holds its value (Docker and Kubernetes secrets); see [`with_secret_files`].
pub fn from_env<T: DeserializeOwned>(
    vars: Option<HashMap<String, String>>,
) -> Result<T, SettingsError> {
    from_resolved(with_secret_files(vars.unwrap_or_else(process_vars))?)
}

/// A service's own settings: read with [`from_env`], then checked before
/// anything starts. A service implements [`FromEnv::validate`]; `load` and
/// `from_vars` come with it.
pub trait FromEnv: DeserializeOwned {
    /// Checks every value; the error names the variable to fix.
    fn validate(&self) -> Result<(), SettingsError>;

    /// Reads and validates the process environment.
    fn load() -> Result<Self, SettingsError> {
        Self::from_vars(None)
    }

    /// Reads and validates the given variables instead of the environment.
    fn from_vars(vars: Option<HashMap<String, String>>) -> Result<Self, SettingsError> {
        let settings: Self = from_env(vars)?;
        settings.validate()?;
        Ok(settings)
    }
}

/// [`from_env`] over variables whose secret files are already read.
pub(super) fn from_resolved<T: DeserializeOwned>(
    vars: HashMap<String, String>,
) -> Result<T, SettingsError> {
    super::text::from_vars(vars).map_err(|e| SettingsError(e.to_string()))
}

/// The process environment (variables that are not UTF-8 left out).
pub fn process_vars() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Whether `name` is a secret variable that may come from a file: a
/// password, token, API key or secret (`…_PASS`, `…_TOKEN`, `…_API_KEY`,
/// `…_SECRET`), or a URL that can carry one (`DATABASE_URL`, `REDIS_URL`).
/// Other `…_FILE` variables (`SSL_CERT_FILE`) are not ours to read.
fn is_secret_var(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["_PASS", "_TOKEN", "_API_KEY", "_SECRET"]
        .iter()
        .any(|suffix| name.ends_with(suffix))
        || name == "DATABASE_URL"
        || name == "REDIS_URL"
}

/// Replaces each `X_FILE=path` of a secret variable `X` by `X=` the file's
/// contents, trailing newlines dropped. Refused, naming the variables: both
/// `X` and `X_FILE` set, or a file that cannot be read.
pub fn with_secret_files(
    mut vars: HashMap<String, String>,
) -> Result<HashMap<String, String>, SettingsError> {
    let files: Vec<(String, String)> = vars
        .iter()
        .filter_map(|(key, path)| {
            let base = key
                .strip_suffix("_FILE")
                .or_else(|| key.strip_suffix("_file"))?;
            (is_secret_var(base) && !path.trim().is_empty())
                .then(|| (base.to_owned(), path.clone()))
        })
        .collect();
    for (base, path) in files {
        if vars
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case(&base) && !v.trim().is_empty())
        {
            return Err(SettingsError(format!(
                "set {base} or {base}_FILE, not both"
            )));
        }
        let value = std::fs::read_to_string(&path)
            .map_err(|e| SettingsError(format!("{base}_FILE: cannot read {path}: {e}")))?;
        vars.retain(|k, _| !k.eq_ignore_ascii_case(&base));
        vars.insert(base, value.trim_end_matches(['\n', '\r']).to_owned());
    }
    Ok(vars)
}

/// Variables for `Settings::from_vars` and friends instead of the process
/// environment (tests, and tools that build settings by hand).
pub fn env_vars<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
) -> Option<std::collections::HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect(),
    )
}

/// Deserialises a setting by its own [`FromStr`] parser, for a type the
/// generic path of [`from_env`] cannot read (an enum whose names are
/// case-insensitive). The value arrives trimmed and never blank.
pub fn de_from_str<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: std::fmt::Display,
{
    String::deserialize(d)?
        .parse()
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;
    use env_vars as vars;
    use secrecy::ExposeSecret;

    #[test]
    fn a_secret_comes_from_its_file() {
        let dir = std::env::temp_dir().join(format!("hydro-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pg_pass");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let path = file.to_str().unwrap();
        let s = Settings::from_vars(vars(&[("PG_PASS_FILE", path)])).unwrap();
        assert_eq!(s.pg.pass.expose_secret(), "from-a-file");

        let both = Settings::from_vars(vars(&[("PG_PASS", "x"), ("PG_PASS_FILE", path)]))
            .unwrap_err()
            .to_string();
        assert!(
            both.contains("set PG_PASS or PG_PASS_FILE, not both"),
            "{both}"
        );

        let missing = dir.join("absent");
        let missing = missing.to_str().unwrap();
        let unreadable = Settings::from_vars(vars(&[("BRIDGE_API_TOKEN_FILE", missing)]))
            .unwrap_err()
            .to_string();
        assert!(
            unreadable.contains("BRIDGE_API_TOKEN_FILE: cannot read")
                && unreadable.contains(missing),
            "{unreadable}"
        );

        // Not a secret of ours: left alone, never read.
        let s = Settings::from_vars(vars(&[("SSL_CERT_FILE", missing)])).unwrap();
        assert_eq!(s.pg.pass.expose_secret(), "hydro");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
