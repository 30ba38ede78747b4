//! The serde side of [`from_env`](super::from_env): the variables as a map
//! (names lower-cased, blank values left out) whose values are text read as
//! whatever type the setting has, trimmed. Numbers and booleans are parsed
//! strictly (`yes` is a boolean, never the number 1). Every error names the
//! variable, as its lower-cased key (`mqtt_port: …`).

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use serde::de::value::{Error, StrDeserializer};
use serde::de::{
    DeserializeOwned, DeserializeSeed, Error as _, IntoDeserializer, MapAccess, Visitor,
};
use serde::{Deserializer, forward_to_deserialize_any};

/// Deserialises `T` from `vars`: a blank value (`X=`, or only spaces, which
/// compose passes for an unset `${X:-}`) is unset, so its setting takes its
/// default.
pub(super) fn from_vars<T: DeserializeOwned>(vars: HashMap<String, String>) -> Result<T, Error> {
    let vars: HashMap<String, String> = vars
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let map = Vars {
        vars: vars.into_iter(),
        key: String::new(),
        pending: None,
    };
    T::deserialize(VarsDeserializer(map))
}

/// The variables as a serde map; an error in a value is prefixed with its
/// key, whichever parser made it.
struct Vars {
    vars: std::collections::hash_map::IntoIter<String, String>,
    /// The key just read, and its value, read next.
    key: String,
    pending: Option<String>,
}

struct VarsDeserializer(Vars);

impl<'de> Deserializer<'de> for VarsDeserializer {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_map(self.0)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Vars {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.vars.next() else {
            return Ok(None);
        };
        let read = seed.deserialize(key.as_str().into_deserializer()).map(Some);
        self.key = key;
        self.pending = Some(value);
        read
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = self.pending.take().expect("a value follows its key");
        seed.deserialize(Text(value))
            .map_err(|e| Error::custom(format!("{}: {e}", self.key)))
    }
}

/// One variable's trimmed text.
struct Text(String);

impl Text {
    /// The text as a `T`, or an error saying what was wanted.
    fn parse<T: FromStr>(&self, kind: &str) -> Result<T, Error>
    where
        T::Err: Display,
    {
        let text = &self.0;
        text.parse()
            .map_err(|e| Error::custom(format!("`{text}` is not {kind} ({e})")))
    }
}

/// Numbers: `deserialize_u16` and friends parse the trimmed text.
macro_rules! numbers {
    ($($method:ident => $visit:ident: $ty:ty, $kind:literal;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit(self.parse::<$ty>($kind)?)
        }
    )*};
}

impl<'de> Deserializer<'de> for Text {
    type Error = Error;

    /// Text as it is: strings, secrets, anything without a type of its own.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    numbers! {
        deserialize_u8 => visit_u8: u8, "a whole number from 0 to 255";
        deserialize_u16 => visit_u16: u16, "a whole number from 0 to 65535";
        deserialize_u32 => visit_u32: u32, "a whole number of 0 or more";
        deserialize_u64 => visit_u64: u64, "a whole number of 0 or more";
        deserialize_i8 => visit_i8: i8, "a whole number";
        deserialize_i16 => visit_i16: i16, "a whole number";
        deserialize_i32 => visit_i32: i32, "a whole number";
        deserialize_i64 => visit_i64: i64, "a whole number";
        deserialize_f32 => visit_f32: f32, "a number";
        deserialize_f64 => visit_f64: f64, "a number";
    }

    /// `1`, `true`, `yes`, `on` and `0`, `false`, `no`, `off`, any case.
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => visitor.visit_bool(true),
            "0" | "false" | "no" | "off" => visitor.visit_bool(false),
            other => Err(Error::custom(format!(
                "`{other}` is not a boolean (use true or false)"
            ))),
        }
    }

    /// Set (blank values never get here), so `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    /// An enum by its serde name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let text: StrDeserializer<'_, Error> = self.0.as_str().into_deserializer();
        text.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        i128 u128 char str string bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(default)]
    struct Knobs {
        port: u16,
        ratio: f64,
        on: bool,
        name: String,
        limit: Option<u32>,
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Slow,
        Fast,
    }

    fn read(pairs: &[(&str, &str)]) -> Result<Knobs, String> {
        let vars = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_vars(vars).map_err(|e| e.to_string())
    }

    #[test]
    fn values_take_their_field_type() {
        let knobs = read(&[
            ("PORT", " 1884 "),
            ("RATIO", "0.25"),
            ("ON", "Yes"),
            ("NAME", " spaced "),
            ("LIMIT", "7"),
            ("MODE", "fast"),
            ("UNRELATED", "whatever"),
        ])
        .unwrap();
        let want = Knobs {
            port: 1884,
            ratio: 0.25,
            on: true,
            name: "spaced".into(),
            limit: Some(7),
            mode: Mode::Fast,
        };
        assert_eq!(knobs, want);
    }

    #[test]
    fn blank_is_unset() {
        let blank = [
            ("PORT", ""),
            ("ON", "  "),
            ("NAME", ""),
            ("LIMIT", " "),
            ("MODE", ""),
        ];
        assert_eq!(read(&blank).unwrap(), Knobs::default());
    }

    #[test]
    fn a_value_that_does_not_read_is_refused_naming_its_variable() {
        for (name, value) in [
            ("PORT", "yes"),
            ("PORT", "70000"),
            ("PORT", "-1"),
            ("PORT", "1.5"),
            ("RATIO", "much"),
            ("ON", "maybe"),
            ("LIMIT", "true"),
            ("MODE", "medium"),
        ] {
            let err = read(&[(name, value)]).unwrap_err();
            let key = name.to_ascii_lowercase();
            assert!(
                err.contains(&key) && err.contains(value.trim()),
                "{name}={value}: {err}"
            );
        }
    }
}
