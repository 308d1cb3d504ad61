//! `java.util.regex` behaviour the routers rely on: `Matcher.matches()` (the
//! whole input) and `replaceFirst` with Java's replacement syntax (`$1`,
//! `${name}`, `\$`).

use regex::{Captures, Regex};

/// A pattern compiled twice: anchored for `matches()`, plain for `find()`.
#[derive(Debug, Clone)]
pub(crate) struct JavaPattern {
    whole: Regex,
    find: Regex,
}

impl JavaPattern {
    pub(crate) fn new(pattern: &str) -> Result<Self, regex::Error> {
        Ok(Self {
            whole: Regex::new(&format!("^(?:{pattern})$"))?,
            find: Regex::new(pattern)?,
        })
    }

    /// `Pattern.matcher(text).matches()`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.whole.is_match(text)
    }

    /// `Matcher.replaceFirst(replacement)`; the error is Java's exception message.
    pub(crate) fn replace_first(&self, text: &str, replacement: &str) -> Result<String, String> {
        let Some(caps) = self.find.captures(text) else {
            return Ok(text.to_owned());
        };
        let m = caps.get(0).map_or(0..0, |m| m.range());
        let mut out = String::with_capacity(text.len() + replacement.len());
        out.push_str(&text[..m.start]);
        expand(&self.find, &caps, replacement, &mut out)?;
        out.push_str(&text[m.end..]);
        Ok(out)
    }
}

/// Java's `Matcher.appendExpandedReplacement`.
fn expand(
    regex: &Regex,
    caps: &Captures<'_>,
    replacement: &str,
    out: &mut String,
) -> Result<(), String> {
    let chars: Vec<char> = replacement.chars().collect();
    let group_count = caps.len() - 1;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                i += 1;
                let Some(c) = chars.get(i) else {
                    return Err("character to be escaped is missing".to_owned());
                };
                out.push(*c);
                i += 1;
            }
            '$' => {
                i += 1;
                let Some(&c) = chars.get(i) else {
                    return Err("Illegal group reference: group index is missing".to_owned());
                };
                if c == '{' {
                    i += 1;
                    let start = i;
                    while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        return Err("named capturing group has 0 length name".to_owned());
                    }
                    if chars.get(i) != Some(&'}') {
                        return Err("named capturing group is missing trailing '}'".to_owned());
                    }
                    i += 1;
                    if !regex.capture_names().any(|n| n == Some(name.as_str())) {
                        return Err(format!("No group with name {{{name}}}"));
                    }
                    out.push_str(caps.name(&name).map_or("", |m| m.as_str()));
                } else {
                    let Some(first) = c.to_digit(10) else {
                        return Err("Illegal group reference".to_owned());
                    };
                    let mut group = first as usize;
                    i += 1;
                    while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                        let next = group * 10 + d as usize;
                        if next > group_count {
                            break;
                        }
                        group = next;
                        i += 1;
                    }
                    if group > group_count {
                        return Err(format!("No group {group}"));
                    }
                    out.push_str(caps.get(group).map_or("", |m| m.as_str()));
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_as_java_does() {
        let p = JavaPattern::new("(.*)-(\\d+)").unwrap();
        assert!(p.matches("orders-12"));
        assert!(!JavaPattern::new("ord").unwrap().matches("orders"));
        assert_eq!(p.replace_first("orders-12", "$2_$1").unwrap(), "12_orders");
        assert_eq!(
            p.replace_first("orders-12", "\\$1$10").unwrap(),
            "$1orders0"
        );
        assert!(p.replace_first("orders-12", "$3").is_err());
        assert!(p.replace_first("orders-12", "x$").is_err());
        let all = JavaPattern::new(".*").unwrap();
        assert_eq!(all.replace_first("t", "prefix-$0").unwrap(), "prefix-t");
    }
}
