//! `java.text.SimpleDateFormat` patterns in UTC, as TimestampRouter and
//! TimestampConverter configure them: formatting, and Java's lenient parsing
//! (a prefix of the text may match; trailing text is ignored).

const MILLIS_PER_DAY: i64 = 86_400_000;
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
];

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Literal(String),
    /// A pattern letter and how many times it repeats.
    Field(char, usize),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct DateFormat {
    pattern: String,
    parts: Vec<Part>,
}

/// The broken-down UTC time of a millisecond instant.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    millis_of_day: i64,
    day_of_year: i64,
    weekday: usize,
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil(millis: i64) -> Civil {
    let days = millis.div_euclid(MILLIS_PER_DAY);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        millis_of_day: millis.rem_euclid(MILLIS_PER_DAY),
        day_of_year: days - days_from_civil(year, 1, 1) + 1,
        weekday: days.rem_euclid(7) as usize,
    }
}

impl DateFormat {
    /// Compiles a pattern; the error is Java's `IllegalArgumentException` message.
    pub(crate) fn parse_pattern(pattern: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    push_literal(&mut parts, "'");
                    i += 2;
                    continue;
                }
                let mut lit = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Unterminated quote".to_owned()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            lit.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            lit.push(*ch);
                            i += 1;
                        }
                    }
                }
                push_literal(&mut parts, &lit);
            } else if c.is_ascii_alphabetic() {
                if !"GyMdkHmsSEDFwWahKzZYuXL".contains(c) {
                    return Err(format!("Illegal pattern character '{c}'"));
                }
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                parts.push(Part::Field(c, n));
                i += n;
            } else {
                push_literal(&mut parts, &c.to_string());
                i += 1;
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            parts,
        })
    }

    /// `toPattern()`.
    pub(crate) fn pattern(&self) -> &str {
        &self.pattern
    }

    pub(crate) fn format(&self, millis: i64) -> String {
        let c = civil(millis);
        let ms = c.millis_of_day;
        let hour = ms / 3_600_000;
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.push_str(l),
                Part::Field(letter, n) => {
                    let n = *n;
                    let num = |out: &mut String, v: i64, width: usize| {
                        let s = v.abs().to_string();
                        if v < 0 {
                            out.push('-');
                        }
                        for _ in s.len()..width {
                            out.push('0');
                        }
                        out.push_str(&s);
                    };
                    match letter {
                        'G' => out.push_str(if c.year > 0 { "AD" } else { "BC" }),
                        'y' | 'Y' | 'u' => {
                            let year = if c.year > 0 { c.year } else { 1 - c.year };
                            if n == 2 {
                                num(&mut out, year % 100, 2);
                            } else {
                                num(&mut out, year, n);
                            }
                        }
                        'M' | 'L' if n >= 4 => out.push_str(MONTHS[c.month as usize - 1]),
                        'M' | 'L' if n == 3 => out.push_str(&MONTHS[c.month as usize - 1][..3]),
                        'M' | 'L' => num(&mut out, i64::from(c.month), n),
                        'd' => num(&mut out, i64::from(c.day), n),
                        'D' => num(&mut out, c.day_of_year, n),
                        'H' => num(&mut out, hour, n),
                        'k' => num(&mut out, if hour == 0 { 24 } else { hour }, n),
                        'K' => num(&mut out, hour % 12, n),
                        'h' => num(&mut out, if hour % 12 == 0 { 12 } else { hour % 12 }, n),
                        'm' => num(&mut out, ms / 60_000 % 60, n),
                        's' => num(&mut out, ms / 1000 % 60, n),
                        'S' => num(&mut out, ms % 1000, n),
                        'E' if n >= 4 => out.push_str(WEEKDAYS[c.weekday]),
                        'E' => out.push_str(&WEEKDAYS[c.weekday][..3]),
                        'a' => out.push_str(if hour < 12 { "AM" } else { "PM" }),
                        'z' if n >= 4 => out.push_str("Coordinated Universal Time"),
                        'z' => out.push_str("UTC"),
                        'Z' => out.push_str("+0000"),
                        'X' => out.push('Z'),
                        // F, w, W: week-based fields, rare in topic names.
                        _ => num(&mut out, 0, n),
                    }
                }
            }
        }
        out
    }

    /// Parses `text` as `SimpleDateFormat.parse(String)` does (lenient, a prefix
    /// suffices); `None` where Java throws `ParseException`.
    #[allow(
        clippy::too_many_lines,
        reason = "one arm per SimpleDateFormat pattern letter: a table, kept whole so it reads against Java's."
    )]
    pub(crate) fn parse(&self, text: &str) -> Option<i64> {
        let bytes: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let (mut year, mut month, mut day) = (1970i64, 1i64, 1i64);
        let (mut hour, mut minute, mut second, mut milli) = (0i64, 0i64, 0i64, 0i64);
        let mut pm: Option<bool> = None;
        let mut offset_ms = 0i64;
        for (idx, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(l) => {
                    for ch in l.chars() {
                        if bytes.get(pos) != Some(&ch) {
                            return None;
                        }
                        pos += 1;
                    }
                }
                Part::Field(letter, n) => {
                    let abutting = matches!(
                        self.parts.get(idx + 1),
                        Some(Part::Field(next, m)) if is_numeric(*next, *m)
                    );
                    let text_field = matches!(letter, 'M' | 'L') && *n >= 3
                        || matches!(letter, 'E' | 'a' | 'G' | 'z' | 'Z' | 'X');
                    if text_field {
                        let rest: String = bytes[pos..].iter().collect();
                        let lower = rest.to_ascii_lowercase();
                        match letter {
                            'M' | 'L' => {
                                let (i, len) = MONTHS.iter().enumerate().find_map(|(i, m)| {
                                    let m = m.to_ascii_lowercase();
                                    if lower.starts_with(&m) {
                                        Some((i, m.len()))
                                    } else if lower.starts_with(&m[..3]) {
                                        Some((i, 3))
                                    } else {
                                        None
                                    }
                                })?;
                                month = i as i64 + 1;
                                pos += len;
                            }
                            'E' => {
                                let len = WEEKDAYS.iter().find_map(|w| {
                                    let w = w.to_ascii_lowercase();
                                    if lower.starts_with(&w) {
                                        Some(w.len())
                                    } else if lower.starts_with(&w[..3]) {
                                        Some(3)
                                    } else {
                                        None
                                    }
                                })?;
                                pos += len;
                            }
                            'a' => {
                                if lower.starts_with("am") {
                                    pm = Some(false);
                                } else if lower.starts_with("pm") {
                                    pm = Some(true);
                                } else {
                                    return None;
                                }
                                pos += 2;
                            }
                            'G' => {
                                if !(lower.starts_with("ad") || lower.starts_with("bc")) {
                                    return None;
                                }
                                pos += 2;
                            }
                            _ => {
                                let (off, len) = parse_zone(&rest)?;
                                offset_ms = off;
                                pos += len;
                            }
                        }
                        continue;
                    }
                    let mut negative = false;
                    if bytes.get(pos) == Some(&'-') && *letter == 'y' {
                        negative = true;
                        pos += 1;
                    }
                    let digits_start = pos;
                    while pos < bytes.len()
                        && bytes[pos].is_ascii_digit()
                        && (!abutting || pos - digits_start < *n)
                    {
                        pos += 1;
                    }
                    if pos == digits_start {
                        return None;
                    }
                    let digits: String = bytes[digits_start..pos].iter().collect();
                    let mut v: i64 = digits.parse().ok()?;
                    if negative {
                        v = -v;
                    }
                    match letter {
                        'y' | 'Y' | 'u' => {
                            year = if *n <= 2 && digits.len() == 2 && !negative {
                                two_digit_year(v)
                            } else {
                                v
                            }
                        }
                        'M' | 'L' => month = v,
                        'd' => day = v,
                        'D' => {
                            month = 1;
                            day = v;
                        }
                        'H' | 'k' => hour = if *letter == 'k' && v == 24 { 0 } else { v },
                        'K' | 'h' => hour = if *letter == 'h' && v == 12 { 0 } else { v },
                        'm' => minute = v,
                        's' => second = v,
                        'S' => milli = v,
                        _ => {}
                    }
                }
            }
        }
        if pos == 0 && !self.parts.is_empty() {
            return None;
        }
        if pm == Some(true) {
            hour += 12;
        }
        // Lenient: months and days past their range roll over, as Calendar does.
        // Out-of-range numbers fail the parse instead of overflowing.
        let months = year.checked_mul(12)?.checked_add(month - 1)?;
        let (y, m) = (months.div_euclid(12), months.rem_euclid(12) + 1);
        if y.abs() > 1_000_000_000 {
            return None;
        }
        let days = days_from_civil(y, m as u32, 1).checked_add(day - 1)?;
        let time = [
            hour.checked_mul(3_600_000)?,
            minute.checked_mul(60_000)?,
            second.checked_mul(1000)?,
            milli,
            -offset_ms,
        ];
        time.into_iter()
            .try_fold(days.checked_mul(MILLIS_PER_DAY)?, i64::checked_add)
    }
}

fn is_numeric(letter: char, n: usize) -> bool {
    match letter {
        'M' | 'L' => n < 3,
        'E' | 'a' | 'G' | 'z' | 'Z' | 'X' => false,
        _ => true,
    }
}

fn push_literal(parts: &mut Vec<Part>, text: &str) {
    if let Some(Part::Literal(l)) = parts.last_mut() {
        l.push_str(text);
    } else {
        parts.push(Part::Literal(text.to_owned()));
    }
}

/// `+hhmm`, `+hh:mm`, `Z`, `UTC`, `GMT`: the offset in ms and the length read.
fn parse_zone(text: &str) -> Option<(i64, usize)> {
    if text.starts_with('Z') {
        return Some((0, 1));
    }
    for name in ["UTC", "GMT"] {
        if text.starts_with(name) {
            return Some((0, 3));
        }
    }
    let sign = match text.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let rest = &text[1..];
    let digits: String = rest.chars().filter(|c| *c != ':').take(4).collect();
    let consumed = if rest.as_bytes().get(2) == Some(&b':') {
        5
    } else {
        4
    };
    if digits.len() < 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = digits[2..].parse().ok()?;
    Some((sign * (h * 3_600_000 + m * 60_000), 1 + consumed))
}

/// SimpleDateFormat reads a two-digit year into the century that starts 80
/// years before now.
fn two_digit_year(yy: i64) -> i64 {
    let start = civil(sluice_api::now_ms()).year - 80;
    let century = start - start.rem_euclid(100);
    let year = century + yy;
    if year < start {
        year + 100
    } else {
        year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_simple_date_format() {
        // 2017-03-04T05:06:07.089Z, a Saturday.
        let t = 1_488_603_967_089;
        let f = |p: &str| DateFormat::parse_pattern(p).unwrap().format(t);
        assert_eq!(f("yyyyMMdd"), "20170304");
        assert_eq!(
            f("yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"),
            "2017-03-04T05:06:07.089Z"
        );
        assert_eq!(f("EEE, d MMM yy h:mm a"), "Sat, 4 Mar 17 5:06 AM");
        assert_eq!(f("D 'o''clock' z Z"), "63 o'clock UTC +0000");
        assert!(DateFormat::parse_pattern("yyyy-bb").is_err());
    }

    #[test]
    fn parses_what_it_formats() {
        let t = 1_488_603_967_089;
        for p in [
            "yyyy-MM-dd HH:mm:ss.SSS",
            "yyyyMMddHHmmssSSS",
            "dd MMM yyyy HH:mm:ss.SSS Z",
        ] {
            let f = DateFormat::parse_pattern(p).unwrap();
            assert_eq!(f.parse(&f.format(t)), Some(t), "{p}");
        }
        let f = DateFormat::parse_pattern("yyyy-MM-dd").unwrap();
        assert_eq!(f.parse("2017-03-04 trailing"), Some(1_488_585_600_000));
        assert_eq!(f.parse("x2017"), None);
        assert_eq!(civil(-1).year, 1969);
        // Numbers no calendar holds fail the parse rather than overflow.
        let f = DateFormat::parse_pattern("yyyy-MM-dd HH").unwrap();
        assert_eq!(f.parse("999999999999999999-99-99 99"), None);
        assert_eq!(f.parse("2017-01-999999999999999999 1"), None);
    }
}
