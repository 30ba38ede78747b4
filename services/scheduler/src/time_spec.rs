//! The time specs of recipe phases: irrigation times (`"08:00"`,
//! `"12:00,18:00"`) and lighting windows (`"06:00-22:00"`; a window whose
//! end is before its start crosses midnight: `"20:00-06:00"`). Times are
//! local to the greenhouse. A bad spec is an error that says what is wrong
//! and what was expected.

use chrono::NaiveTime;

/// What is wrong with a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no time given; expected e.g. \"08:00\" or \"12:00,18:00\"")]
    Empty,
    #[error("`{0}` is not a time of day; expected HH:MM, e.g. 08:00")]
    NotATime(String),
    #[error("`{0}`: the hour must be 00-23")]
    Hour(String),
    #[error("`{0}`: the minutes must be 00-59")]
    Minute(String),
    #[error("`{0}` is given twice")]
    Repeated(String),
    #[error("`{0}` is not a window; expected HH:MM-HH:MM, e.g. 06:00-22:00")]
    NotAWindow(String),
    #[error("`{0}`: start and end are the same, so the window is empty")]
    EmptyWindow(String),
}

/// One time of day, `H:MM` or `HH:MM`.
pub fn parse_time(text: &str) -> Result<NaiveTime, SpecError> {
    let text = text.trim();
    let not_a_time = || SpecError::NotATime(text.to_owned());
    let (h, m) = text.split_once(':').ok_or_else(not_a_time)?;
    let digits = |s: &str, max_len| {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    let hour = digits(h, 2).ok_or_else(not_a_time)?;
    if m.len() != 2 {
        return Err(not_a_time());
    }
    let minute = digits(m, 2).ok_or_else(not_a_time)?;
    if hour > 23 {
        return Err(SpecError::Hour(text.to_owned()));
    }
    if minute > 59 {
        return Err(SpecError::Minute(text.to_owned()));
    }
    Ok(NaiveTime::from_hms_opt(hour, minute, 0).expect("checked above"))
}

/// A comma-separated list of times, sorted.
pub fn parse_times(spec: &str) -> Result<Vec<NaiveTime>, SpecError> {
    if spec.trim().is_empty() {
        return Err(SpecError::Empty);
    }
    let mut times = Vec::new();
    for part in spec.split(',') {
        let t = parse_time(part)?;
        if times.contains(&t) {
            return Err(SpecError::Repeated(part.trim().to_owned()));
        }
        times.push(t);
    }
    times.sort();
    Ok(times)
}

/// A daily window: on at `start`, off at `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl Window {
    pub fn parse(spec: &str) -> Result<Window, SpecError> {
        let spec = spec.trim();
        let (start, end) = spec
            .split_once('-')
            .ok_or_else(|| SpecError::NotAWindow(spec.to_owned()))?;
        let window = Window {
            start: parse_time(start)?,
            end: parse_time(end)?,
        };
        if window.start == window.end {
            return Err(SpecError::EmptyWindow(spec.to_owned()));
        }
        Ok(window)
    }

    /// Whether the light is on at local time `t` (start included, end not).
    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn times_as_recipes_write_them() {
        assert_eq!(parse_times("08:00").unwrap(), [t(8, 0)]);
        assert_eq!(parse_times("18:00, 12:00").unwrap(), [t(12, 0), t(18, 0)]);
        assert_eq!(
            parse_times("8:05,00:00,23:59").unwrap(),
            [t(0, 0), t(8, 5), t(23, 59)]
        );
    }

    #[test]
    fn bad_times_say_what_is_wrong() {
        for (spec, message) in [
            (
                "",
                "no time given; expected e.g. \"08:00\" or \"12:00,18:00\"",
            ),
            (
                " ",
                "no time given; expected e.g. \"08:00\" or \"12:00,18:00\"",
            ),
            ("25:00", "`25:00`: the hour must be 00-23"),
            ("24:00", "`24:00`: the hour must be 00-23"),
            ("12:60", "`12:60`: the minutes must be 00-59"),
            ("8", "`8` is not a time of day; expected HH:MM, e.g. 08:00"),
            (
                "8:5",
                "`8:5` is not a time of day; expected HH:MM, e.g. 08:00",
            ),
            (
                "08:00,",
                "`` is not a time of day; expected HH:MM, e.g. 08:00",
            ),
            (
                "noon",
                "`noon` is not a time of day; expected HH:MM, e.g. 08:00",
            ),
            (
                "-1:00",
                "`-1:00` is not a time of day; expected HH:MM, e.g. 08:00",
            ),
            (
                "08:00;12:00",
                "`08:00;12:00` is not a time of day; expected HH:MM, e.g. 08:00",
            ),
            ("08:00,8:00", "`8:00` is given twice"),
        ] {
            assert_eq!(
                parse_times(spec).unwrap_err().to_string(),
                message,
                "{spec:?}"
            );
        }
    }

    #[test]
    fn windows_and_midnight() {
        let day = Window::parse("06:00-22:00").unwrap();
        assert!(!day.contains(t(5, 59)));
        assert!(day.contains(t(6, 0)));
        assert!(day.contains(t(21, 59)));
        assert!(!day.contains(t(22, 0)));
        let night = Window::parse("20:00 - 06:00").unwrap();
        assert!(night.contains(t(20, 0)));
        assert!(night.contains(t(23, 59)));
        assert!(night.contains(t(0, 0)));
        assert!(night.contains(t(5, 59)));
        assert!(!night.contains(t(6, 0)));
        assert!(!night.contains(t(12, 0)));
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (spec, message) in [
            (
                "06:00",
                "`06:00` is not a window; expected HH:MM-HH:MM, e.g. 06:00-22:00",
            ),
            (
                "06:00-06:00",
                "`06:00-06:00`: start and end are the same, so the window is empty",
            ),
            ("06:00-24:00", "`24:00`: the hour must be 00-23"),
            (
                "6-22",
                "`6` is not a time of day; expected HH:MM, e.g. 08:00",
            ),
        ] {
            assert_eq!(
                Window::parse(spec).unwrap_err().to_string(),
                message,
                "{spec:?}"
            );
        }
    }
}
