//! `InsertHeader`'s `value.literal`: Connect parses it with
//! `Values.parseString` (numbers, booleans, null, lists and maps are typed) and
//! its `SimpleHeaderConverter` writes the typed value back as text, so `1.50`
//! is stored as `1.5` and `[1, 2]` as `[1,2]`. This reproduces that round
//! trip for the literal forms (dates and times already read back as written).

use crate::java::{float_to_string, parse_big_decimal};

/// The header bytes Connect stores for `literal`; `None` for `null`.
pub(crate) fn header_text(literal: &str) -> Option<String> {
    let trimmed = literal.trim();
    if trimmed.starts_with(['[', '{']) {
        let mut p = Parser {
            chars: trimmed.chars().collect(),
            pos: 0,
        };
        if let Some(text) = p.container() {
            p.skip_ws();
            if p.pos == p.chars.len() {
                return Some(text);
            }
        }
        return Some(literal.to_owned());
    }
    match trimmed {
        "" => Some(literal.to_owned()),
        "null" => None,
        "true" | "false" => Some(trimmed.to_owned()),
        _ => Some(number_text(trimmed).unwrap_or_else(|| literal.to_owned())),
    }
}

/// `parseAsNumber` then `toString`: integral values as integers, others as a
/// `float` (or a `double`, when out of float range).
fn number_text(token: &str) -> Option<String> {
    if !token.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        return None;
    }
    let d = parse_big_decimal(token)?;
    let unscaled = d.to_i128()?;
    let scale = d.scale;
    let integral = if scale <= 0 {
        unscaled.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)
    } else {
        let p = 10i128.checked_pow(scale.unsigned_abs())?;
        (unscaled % p == 0).then_some(unscaled / p)
    };
    if let Some(i) = integral {
        if let Ok(v) = i64::try_from(i) {
            return Some(v.to_string());
        }
    }
    let f: f64 = crate::java::big_decimal_double(&d);
    if scale != 0 && (f as f32).is_finite() {
        return Some(float_to_string(f as f32));
    }
    if scale != 0 && f.is_finite() {
        return Some(crate::java::double_to_string(f));
    }
    Some(crate::java::decimal_to_string(&d))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.chars.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// A list or map, rendered as Connect writes it; `None` where Connect
    /// falls back to the plain string.
    fn container(&mut self) -> Option<String> {
        let (open, close) = if self.eat('[') {
            ('[', ']')
        } else if self.eat('{') {
            ('{', '}')
        } else {
            return None;
        };
        let mut parts = Vec::new();
        if !self.eat(close) {
            loop {
                let item = self.element()?;
                let item = if open == '{' {
                    if !self.eat(':') {
                        return None;
                    }
                    format!("{item}:{}", self.element()?)
                } else {
                    item
                };
                parts.push(item);
                if self.eat(close) {
                    break;
                }
                if !self.eat(',') {
                    return None;
                }
            }
        }
        Some(format!("{open}{}{close}", parts.join(",")))
    }

    fn element(&mut self) -> Option<String> {
        self.skip_ws();
        match self.chars.get(self.pos)? {
            '[' | '{' => self.container(),
            '"' => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    let c = *self.chars.get(self.pos)?;
                    self.pos += 1;
                    match c {
                        '\\' => {
                            s.push(*self.chars.get(self.pos)?);
                            self.pos += 1;
                        }
                        '"' => break,
                        c => s.push(c),
                    }
                }
                Some(format!(
                    "\"{}\"",
                    s.replace('\\', "\\\\").replace('"', "\\\"")
                ))
            }
            _ => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| !c.is_whitespace() && !",:]}".contains(*c))
                {
                    self.pos += 1;
                }
                let token: String = self.chars[start..self.pos].iter().collect();
                match token.as_str() {
                    "null" | "true" | "false" => Some(token),
                    _ => number_text(&token),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_round_trip_as_connect_stores_them() {
        for (literal, stored) in [
            ("hello", Some(" hello")),
            ("1.50", Some("1.5")),
            ("42", Some("42")),
            ("1e3", Some("1000")),
            ("[1, 2]", Some("[1,2]")),
            (
                "{\"a\": 1, \"b\": [true, null]}",
                Some("{\"a\":1,\"b\":[true,null]}"),
            ),
            ("[1, oops]", Some("[1, oops]")),
            ("null", None),
        ] {
            let literal = if literal == "hello" {
                " hello"
            } else {
                literal
            };
            assert_eq!(header_text(literal).as_deref(), stored, "{literal}");
        }
    }
}
