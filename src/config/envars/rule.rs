//! What a value must satisfy: its type, narrowed by its constraints.

use super::VarType;
use crate::text::one_line;
use std::ffi::OsStr;

/// What a value must satisfy: its type, narrowed by its constraints.
pub(super) struct Rule {
    ty: Option<VarType>,
    allowed: Allowed,
    /// The constraints, whitespace normalised, for messages.
    text: String,
}

enum Allowed {
    Anything,
    Words(Vec<String>),
    Integers(Vec<(i128, i128)>),
    Reals(Vec<(f64, f64)>),
}

impl Rule {
    pub(super) fn new(ty: Option<VarType>, constraints: Option<&str>) -> Result<Rule, String> {
        let text = constraints.map(one_line).unwrap_or_default();
        let allowed = match (ty, constraints) {
            (_, None) | (None | Some(VarType::String | VarType::Filename), _) => Allowed::Anything,
            (Some(VarType::SimpleString), Some(c)) => {
                Allowed::Words(c.split_whitespace().map(str::to_string).collect())
            }
            (Some(VarType::Real), Some(c)) => {
                Allowed::Reals(parse_ranges(c, parse_real, "real numbers")?)
            }
            (Some(VarType::Integer | VarType::Nonnegative | VarType::Port), Some(c)) => {
                Allowed::Integers(parse_ranges(c, parse_int, "integers")?)
            }
        };
        Ok(Rule { ty, allowed, text })
    }

    /// Ok(Some(port)) for a valid port, Ok(None) for any other valid value, else the
    /// rule the value broke. Strings and filenames may hold any bytes; a simple string
    /// that is not UTF-8 is checked for whitespace as far as it is text, and numbers must
    /// be ASCII text.
    pub(super) fn check(&self, value: &OsStr) -> Result<Option<u16>, String> {
        // Bytes that are not UTF-8 read as U+FFFD: no whitespace, no digit, so the lossy
        // text fails every number and only `exact` text can be an allowed word.
        let exact = value.to_str().is_some();
        let text = value.to_string_lossy();
        let value = &*text;
        let in_ranges = match self.ty {
            None | Some(VarType::String | VarType::Filename) => return Ok(None),
            Some(VarType::SimpleString) => {
                if value.chars().any(char::is_whitespace) {
                    return Err("must be a single word, without whitespace".to_string());
                }
                if let Allowed::Words(words) = &self.allowed
                    && !(exact && words.iter().any(|w| w == value))
                {
                    return Err(format!(
                        "not one of the allowed values: {}",
                        words.join(" ")
                    ));
                }
                return Ok(None);
            }
            Some(VarType::Real) => {
                let n = parse_real(value).ok_or("not a real number")?;
                match &self.allowed {
                    Allowed::Reals(ranges) => ranges.iter().any(|&(a, b)| a <= n && n <= b),
                    _ => true,
                }
            }
            Some(t @ (VarType::Integer | VarType::Nonnegative | VarType::Port)) => {
                let n = parse_int(value);
                let n = match t {
                    VarType::Integer => n.ok_or("not an integer")?,
                    VarType::Nonnegative => n
                        .filter(|&n| n >= 0)
                        .ok_or("not a nonnegative integer (0 or more)")?,
                    _ => n
                        .filter(|n| (1..=65535).contains(n))
                        .ok_or("not a port (1-65535)")?,
                };
                let fits = match &self.allowed {
                    Allowed::Integers(ranges) => ranges.iter().any(|&(a, b)| a <= n && n <= b),
                    _ => true,
                };
                if fits && t == VarType::Port {
                    return Ok(Some(u16::try_from(n).expect("checked above")));
                }
                fits
            }
        };
        if in_ranges {
            Ok(None)
        } else if self.text.contains(' ') {
            Err(format!("outside the allowed ranges {}", self.text))
        } else {
            Err(format!("outside the allowed range {}", self.text))
        }
    }
}

pub(super) fn parse_int(s: &str) -> Option<i128> {
    s.parse().ok()
}

fn parse_real(s: &str) -> Option<f64> {
    // f64's parser also takes "inf" and "NaN", which are not numbers a service can use.
    s.parse().ok().filter(|n: &f64| n.is_finite())
}

/// Space-separated `N` or `START-END`; see the module notes for negative bounds.
fn parse_ranges<T: PartialOrd + Copy>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    kind: &str,
) -> Result<Vec<(T, T)>, String> {
    text.split_whitespace()
        .map(|token| {
            if let Some(n) = parse(token) {
                return Ok((n, n));
            }
            let (start, end) = token
                .match_indices('-')
                .filter(|&(i, _)| i > 0)
                .find_map(|(i, _)| Some((parse(&token[..i])?, parse(&token[i + 1..])?)))
                .ok_or_else(|| {
                    format!("{token:?} is not a number or a START-END range of {kind}")
                })?;
            if start <= end {
                Ok((start, end))
            } else {
                Err(format!("{token:?} is an empty range (START is above END)"))
            }
        })
        .collect()
}
