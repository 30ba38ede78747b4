//! [`text_enum!`](crate::text_enum!): an enum whose variants each stand for
//! one fixed text (a topic level, a column value, a setting's value),
//! declared once as `Variant => "text"` lines so that `as_str`, `ALL`,
//! parsing and the parse error cannot disagree; and the two helpers its
//! parse error is made with, for the enums that parse by hand (another
//! message, or the text normalised first) but list their texts the same way.

/// The texts as a sentence lists them: `a`, `a or b`, `a, b or c`.
pub fn one_of(texts: &[&str]) -> String {
    match texts.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_owned(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The error for `other`, a text that names none of `texts`:
/// ``"`{other}` is not a {noun}: use a, b or c"``.
pub fn not_one_of(other: &str, noun: &str, texts: &[&str]) -> String {
    format!("`{other}` is not a {noun}: use {}", one_of(texts))
}

/// Declares an enum from `Variant => "text"` lines and writes, from that one
/// list:
///
/// - the enum itself, with the caller's doc comments and attributes (derives
///   such as `Serialize` or `sqlx::Type` and their `serde`/`sqlx` attributes
///   are the caller's: the macro does not touch them), variants in order;
/// - `ALL`, every variant in the order declared;
/// - `as_str(self) -> &'static str`, the variant's text;
/// - `from_text(&str) -> Option<Self>`, the variant whose text it is exactly;
///
/// and, when asked for after the enum:
///
/// - `impl FromStr(noun = "…");`: `FromStr` with a `String` error, exact
///   texts only, the error made by [`not_one_of`]
///   (``"`{other}` is not a {noun}: use a, b or c"``);
/// - `impl Display;`: `Display` writes the text.
///
/// The variants are unit variants and the enum must be `Copy` (`as_str`
/// takes `self`).
///
/// ```
/// proto::text_enum! {
///     /// Where a valve stands.
///     #[derive(Debug, Clone, Copy, PartialEq, Eq)]
///     pub enum Valve {
///         Open => "open",
///         /// Shut tight.
///         Closed => "closed",
///         Stuck => "stuck",
///     }
///     impl FromStr(noun = "valve position");
///     impl Display;
/// }
///
/// assert_eq!(Valve::ALL, [Valve::Open, Valve::Closed, Valve::Stuck]);
/// assert_eq!(Valve::Closed.as_str(), "closed");
/// assert_eq!(Valve::from_text("stuck"), Some(Valve::Stuck));
/// assert_eq!(Valve::from_text("Open"), None);
/// assert_eq!("open".parse::<Valve>(), Ok(Valve::Open));
/// assert_eq!(
///     "ajar".parse::<Valve>(),
///     Err("`ajar` is not a valve position: use open, closed or stuck".to_owned())
/// );
/// assert_eq!(Valve::Stuck.to_string(), "stuck");
/// ```
#[macro_export]
macro_rules! text_enum {
    (@impls $name:ident;) => {};
    (@impls $name:ident; impl FromStr(noun = $noun:literal); $($rest:tt)*) => {
        impl ::std::str::FromStr for $name {
            type Err = ::std::string::String;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Self::from_text(s).ok_or_else(|| {
                    $crate::text_enum::not_one_of(s, $noun, &Self::ALL.map(Self::as_str))
                })
            }
        }

        $crate::text_enum!(@impls $name; $($rest)*);
    };
    (@impls $name:ident; impl Display; $($rest:tt)*) => {
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        $crate::text_enum!(@impls $name; $($rest)*);
    };
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
        $($impls:tt)*
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every variant, in the order declared.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The variant's text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The variant whose text is exactly `text`, if any.
            pub fn from_text(text: &str) -> ::std::option::Option<Self> {
                match text {
                    $($text => ::std::option::Option::Some($name::$variant),)+
                    _ => ::std::option::Option::None,
                }
            }
        }

        $crate::text_enum!(@impls $name; $($impls)*);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_lists_texts_as_a_sentence() {
        assert_eq!(one_of(&[]), "");
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c", "d"]), "a, b, c or d");
    }

    #[test]
    fn not_one_of_names_the_text_the_noun_and_the_choices() {
        assert_eq!(
            not_one_of("x", "role", &["primary", "standby"]),
            "`x` is not a role: use primary or standby"
        );
    }
}
