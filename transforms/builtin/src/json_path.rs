//! The JSONPath subset Confluent's `Filter` conditions use (Jayway syntax):
//! `$`, `.name`, `['name']`, `[n]`, `[*]`, `..name`, and filters
//! `[?(<expr>)]` with `@`-relative paths, `== != < <= > >= =~ in nin`,
//! `&& || !` and parentheses. A filter applied to an object tests the object
//! itself, as Jayway does, so `$[?(@.status == 'active')]` matches a record.

use serde_json::Value as Json;

#[derive(Debug, Clone)]
enum Segment {
    Child(String),
    Index(i64),
    Wildcard,
    Descendant(String),
    Filter(Box<Expr>),
}

#[derive(Debug, Clone)]
enum Operand {
    /// `@...` (relative) or `$...` (absolute).
    Path {
        relative: bool,
        segments: Vec<Segment>,
    },
    Literal(Json),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    In,
    Nin,
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Exists(Operand),
    Compare(Operand, Op, Operand),
}

/// A compiled path.
#[derive(Debug, Clone)]
pub(crate) struct JsonPath {
    segments: Vec<Segment>,
}

/// What evaluating a path found.
pub(crate) struct Outcome {
    /// Whether the path selected anything.
    pub(crate) matched: bool,
    /// Whether the path (outside its filters) named a field that is missing
    /// or null. Inside a filter `[?(...)]` such a field is only "undefined":
    /// the test does not match, as Confluent documents.
    pub(crate) missing_or_null: bool,
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser { text, pos: 0 };
        p.skip_ws();
        if !p.eat("$") {
            return Err(format!("Path must start with '$': {text}"));
        }
        let segments = p.segments()?;
        p.skip_ws();
        if p.pos != text.len() {
            return Err(format!("Could not parse path {text} at position {}", p.pos));
        }
        Ok(Self { segments })
    }

    pub(crate) fn evaluate(&self, root: &Json) -> Outcome {
        let mut missing = false;
        let found = select(root, root, &self.segments, &mut missing);
        Outcome {
            matched: !found.is_empty(),
            missing_or_null: missing,
        }
    }
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }
    fn skip_ws(&mut self) {
        while self.rest().starts_with(char::is_whitespace) {
            self.pos += self.rest().chars().next().map_or(1, char::len_utf8);
        }
    }
    fn eat(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
    fn error(&self, what: &str) -> String {
        format!("{what} at position {} in {}", self.pos, self.text)
    }
    fn name(&mut self) -> String {
        let end = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '$'))
            .unwrap_or(self.rest().len());
        let n = self.rest()[..end].to_owned();
        self.pos += end;
        n
    }
    fn quoted(&mut self) -> Result<String, String> {
        let quote = self
            .rest()
            .chars()
            .next()
            .ok_or_else(|| self.error("expected a quote"))?;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        out.push(n);
                    }
                }
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                c => out.push(c),
            }
        }
        Err(self.error("unterminated string"))
    }
    fn segments(&mut self) -> Result<Vec<Segment>, String> {
        let mut out = Vec::new();
        loop {
            if self.eat("..") {
                let n = if self.rest().starts_with('[') {
                    self.pos += 1;
                    let q = self.quoted()?;
                    if !self.eat("]") {
                        return Err(self.error("expected ']'"));
                    }
                    q
                } else {
                    self.name()
                };
                out.push(Segment::Descendant(n));
            } else if self.eat(".") {
                if self.eat("*") {
                    out.push(Segment::Wildcard);
                } else {
                    let n = self.name();
                    if n.is_empty() {
                        return Err(self.error("expected a field name"));
                    }
                    out.push(Segment::Child(n));
                }
            } else if self.eat("[") {
                self.skip_ws();
                if self.eat("?(") {
                    let e = self.expr()?;
                    self.skip_ws();
                    if !self.eat(")") {
                        return Err(self.error("expected ')'"));
                    }
                    out.push(Segment::Filter(Box::new(e)));
                } else if self.eat("*") {
                    out.push(Segment::Wildcard);
                } else if self.rest().starts_with(['\'', '"']) {
                    out.push(Segment::Child(self.quoted()?));
                } else {
                    let end = self
                        .rest()
                        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                        .unwrap_or(self.rest().len());
                    let n = self.rest()[..end]
                        .parse()
                        .map_err(|_| self.error("expected an index"))?;
                    self.pos += end;
                    out.push(Segment::Index(n));
                }
                self.skip_ws();
                if !self.eat("]") {
                    return Err(self.error("expected ']'"));
                }
            } else {
                return Ok(out);
            }
        }
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        loop {
            self.skip_ws();
            if self.eat("||") {
                left = Expr::Or(Box::new(left), Box::new(self.and()?));
            } else {
                return Ok(left);
            }
        }
    }
    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            self.skip_ws();
            if self.eat("&&") {
                left = Expr::And(Box::new(left), Box::new(self.unary()?));
            } else {
                return Ok(left);
            }
        }
    }
    fn unary(&mut self) -> Result<Expr, String> {
        self.skip_ws();
        if self.eat("!") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let e = self.expr()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.error("expected ')'"));
            }
            return Ok(e);
        }
        let left = self.operand()?;
        self.skip_ws();
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("=~", Op::Matches),
            ("nin ", Op::Nin),
            ("in ", Op::In),
        ];
        for (token, op) in ops {
            if self.eat(token) {
                self.skip_ws();
                let right = self.operand()?;
                return Ok(Expr::Compare(left, op, right));
            }
        }
        Ok(Expr::Exists(left))
    }
    fn operand(&mut self) -> Result<Operand, String> {
        self.skip_ws();
        if self.eat("@") {
            return Ok(Operand::Path {
                relative: true,
                segments: self.segments()?,
            });
        }
        if self.eat("$") {
            return Ok(Operand::Path {
                relative: false,
                segments: self.segments()?,
            });
        }
        if self.rest().starts_with(['\'', '"']) {
            return Ok(Operand::Literal(Json::String(self.quoted()?)));
        }
        if self.eat("/") {
            let end = self
                .rest()
                .find('/')
                .ok_or_else(|| self.error("unterminated regex"))?;
            let pattern = self.rest()[..end].to_owned();
            self.pos += end + 1;
            let insensitive = self.eat("i");
            let pattern = if insensitive {
                format!("(?i){pattern}")
            } else {
                pattern
            };
            return regex::Regex::new(&pattern)
                .map(Operand::Regex)
                .map_err(|e| self.error(&e.to_string()));
        }
        if self.rest().starts_with('[') {
            let end = self
                .rest()
                .find(']')
                .ok_or_else(|| self.error("unterminated list"))?;
            let inner = self.rest()[1..end].replace('\'', "\"");
            self.pos += end + 1;
            return serde_json::from_str(&format!("[{inner}]"))
                .map(Operand::Literal)
                .map_err(|e| self.error(&e.to_string()));
        }
        for (word, v) in [
            ("true", Json::Bool(true)),
            ("false", Json::Bool(false)),
            ("null", Json::Null),
        ] {
            if self.eat(word) {
                return Ok(Operand::Literal(v));
            }
        }
        let end = self
            .rest()
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E')))
            .unwrap_or(self.rest().len());
        let n: f64 = self.rest()[..end]
            .parse()
            .map_err(|_| self.error("expected a value"))?;
        self.pos += end;
        Ok(Operand::Literal(
            serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number),
        ))
    }
}

fn select<'a>(
    root: &'a Json,
    at: &'a Json,
    segments: &[Segment],
    missing: &mut bool,
) -> Vec<&'a Json> {
    let mut current = vec![at];
    for seg in segments {
        let mut next = Vec::new();
        for v in current {
            match seg {
                Segment::Child(n) => match v.get(n) {
                    Some(Json::Null) | None => *missing = true,
                    Some(c) => next.push(c),
                },
                Segment::Index(i) => {
                    if let Json::Array(a) = v {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        if let Some(c) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(c);
                        }
                    }
                }
                Segment::Wildcard => match v {
                    Json::Array(a) => next.extend(a),
                    Json::Object(o) => next.extend(o.values()),
                    _ => {}
                },
                Segment::Descendant(n) => descend(v, n, &mut next),
                Segment::Filter(e) => match v {
                    Json::Array(a) => {
                        next.extend(a.iter().filter(|item| test(root, item, e)));
                    }
                    other => {
                        if test(root, other, e) {
                            next.push(other);
                        }
                    }
                },
            }
        }
        current = next;
    }
    current
}

fn descend<'a>(v: &'a Json, name: &str, out: &mut Vec<&'a Json>) {
    match v {
        Json::Object(o) => {
            if let Some(c) = o.get(name) {
                out.push(c);
            }
            for c in o.values() {
                descend(c, name, out);
            }
        }
        Json::Array(a) => a.iter().for_each(|c| descend(c, name, out)),
        _ => {}
    }
}

fn resolve<'a>(root: &'a Json, at: &'a Json, operand: &'a Operand) -> Option<&'a Json> {
    match operand {
        Operand::Path { relative, segments } => {
            let base = if *relative { at } else { root };
            // Inside a filter a missing field is undefined, not "missing".
            let mut undefined = false;
            select(root, base, segments, &mut undefined)
                .first()
                .copied()
                .filter(|v| !v.is_null())
        }
        Operand::Literal(v) => Some(v),
        Operand::Regex(_) => None,
    }
}

fn test(root: &Json, at: &Json, e: &Expr) -> bool {
    match e {
        Expr::Or(a, b) => test(root, at, a) || test(root, at, b),
        Expr::And(a, b) => test(root, at, a) && test(root, at, b),
        Expr::Not(a) => !test(root, at, a),
        Expr::Exists(o) => resolve(root, at, o).is_some(),
        Expr::Compare(l, op, r) => {
            let left = resolve(root, at, l);
            if let (Op::Matches, Operand::Regex(re)) = (op, r) {
                return left.and_then(Json::as_str).is_some_and(|s| re.is_match(s));
            }
            let right = resolve(root, at, r);
            let (Some(left), Some(right)) = (left, right) else {
                return false;
            };
            compare(left, *op, right)
        }
    }
}

fn compare(l: &Json, op: Op, r: &Json) -> bool {
    use std::cmp::Ordering;
    let ordering = match (l, r) {
        (Json::Number(a), Json::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Json::String(a), Json::String(b)) => Some(a.cmp(b)),
        (Json::Bool(a), Json::Bool(b)) => Some(a.cmp(b)),
        (Json::Null, Json::Null) => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        Op::Eq => ordering == Some(Ordering::Equal) || (l.is_array() && l == r),
        Op::Ne => ordering != Some(Ordering::Equal) && !(l.is_array() && l == r),
        Op::Lt => ordering == Some(Ordering::Less) && !l.is_boolean(),
        Op::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)) && !l.is_boolean(),
        Op::Gt => ordering == Some(Ordering::Greater) && !l.is_boolean(),
        Op::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)) && !l.is_boolean(),
        Op::In => r
            .as_array()
            .is_some_and(|a| a.iter().any(|x| compare(l, Op::Eq, x))),
        Op::Nin => r
            .as_array()
            .is_some_and(|a| !a.iter().any(|x| compare(l, Op::Eq, x))),
        Op::Matches => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(path: &str, doc: Json) -> (bool, bool) {
        let o = JsonPath::parse(path).unwrap().evaluate(&doc);
        (o.matched, o.missing_or_null)
    }

    #[test]
    fn confluent_filter_examples() {
        // Confluent's documented example: records whose nested field matches.
        let p = "$.store[?(@.book.category == 'fiction')]";
        let doc = json!({"store": {"book": {"category": "fiction"}}});
        assert_eq!(matches(p, doc), (true, false));
        assert_eq!(
            matches("$[?(@.status == 'active')]", json!({"status": "active"})),
            (true, false)
        );
        assert_eq!(
            matches("$[?(@.status == 'active')]", json!({"status": "gone"})),
            (false, false)
        );
        // A field missing inside a filter is undefined: no match, not "missing".
        assert_eq!(
            matches("$[?(@.status == 'active')]", json!({"other": 1})),
            (false, false)
        );
        // Outside a filter it is missing (or null).
        assert_eq!(
            matches("$.customer[?(@.tier == 'gold')]", json!({"other": 1})),
            (false, true)
        );
        assert_eq!(
            matches("$.customer[?(@.tier == 'gold')]", json!({"customer": null})),
            (false, true)
        );
        assert_eq!(
            matches(
                "$[?(@.n > 3 && @.name =~ /a.*/i)]",
                json!({"n": 4, "name": "Anna"})
            ),
            (true, false)
        );
        assert_eq!(
            matches("$[?(@.kind in ['a','b'])]", json!({"kind": "b"})),
            (true, false)
        );
        assert_eq!(
            matches("$.items[1]", json!({"items": [1, 2]})),
            (true, false)
        );
        assert!(JsonPath::parse("status == 1").is_err());
    }
}
