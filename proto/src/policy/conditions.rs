//! Three-valued condition evaluation: every IAM condition operator, against a
//! [`RequestContext`] whose keys may be unknown.
//!
//! Rules (IAM User Guide, "Condition operators"): several values for one key are OR; a negated
//! operator (`StringNotEquals`, `NumericNotEquals`, `DateNotEquals`, `ArnNot…`,
//! `NotIpAddress`) holds when no value matches; an absent key makes a positive operator false
//! and a negated one true; `…IfExists` is true on an absent key; `ForAllValues:` is true and
//! `ForAnyValue:` false on an absent key; `Null` is true when the key's presence is what one
//! of its values says (`"true"`: absent, `"false"`: present; a list is OR). A key ccctl cannot
//! know makes the condition [`Truth::Unknown`], except `Null` with both `"true"` and `"false"`
//! (true either way). Multivalued keys need a set operator; a plain operator on a key with
//! several values is not judged.
//!
//! Value grammars: numbers are `-?digits(.digits)?`; dates are epoch seconds or
//! `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS(.fff)?(Z|±HH:MM)?` (no zone: UTC), compared to the
//! millisecond; ARNs are compared component by component (six, split at the first five `:`),
//! each a case-sensitive `*`/`?` glob; `…IgnoreCase` folds ASCII case; `Bool` compares `true`/`false` case-insensitively;
//! `IpAddress` takes an address or CIDR (IPv4 or IPv6).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::context::{KeyValue, RequestContext, days_from_civil};
use super::document::{BaseOp, Condition, SetOp};

/// Kleene's three-valued logic; `Unknown` carries the keys it depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown(BTreeSet<String>),
}

impl Truth {
    pub fn from_bool(b: bool) -> Truth {
        if b { Truth::True } else { Truth::False }
    }

    pub fn unknown(key: &str) -> Truth {
        Truth::Unknown(BTreeSet::from([key.to_owned()]))
    }

    pub fn is_true(&self) -> bool {
        *self == Truth::True
    }

    pub fn is_false(&self) -> bool {
        *self == Truth::False
    }

    /// The keys an `Unknown` depends on (none for a definite value).
    pub fn keys(&self) -> BTreeSet<String> {
        match self {
            Truth::Unknown(k) => k.clone(),
            _ => BTreeSet::new(),
        }
    }

    pub fn and(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::False, _) | (_, Truth::False) => Truth::False,
            (Truth::True, x) | (x, Truth::True) => x,
            (Truth::Unknown(mut a), Truth::Unknown(b)) => {
                a.extend(b);
                Truth::Unknown(a)
            }
        }
    }

    pub fn or(self, other: Truth) -> Truth {
        match (self, other) {
            (Truth::True, _) | (_, Truth::True) => Truth::True,
            (Truth::False, x) | (x, Truth::False) => x,
            (Truth::Unknown(mut a), Truth::Unknown(b)) => {
                a.extend(b);
                Truth::Unknown(a)
            }
        }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Truth {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            u => u,
        }
    }

    pub fn all(items: impl IntoIterator<Item = Truth>) -> Truth {
        items.into_iter().fold(Truth::True, Truth::and)
    }

    pub fn any(items: impl IntoIterator<Item = Truth>) -> Truth {
        items.into_iter().fold(Truth::False, Truth::or)
    }
}

/// `*` and `?` wildcards, as IAM's `StringLike`, action and resource patterns use them.
pub fn glob(pattern: &str, s: &str) -> bool {
    if pattern.is_ascii() && s.is_ascii() {
        glob_on(pattern.as_bytes(), s.as_bytes())
    } else {
        let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
        glob_on(&p, &t)
    }
}

/// Greedy matching with backtracking to the last `*` (linear in practice).
fn glob_on<T: Copy + PartialEq + From<u8>>(p: &[T], t: &[T]) -> bool {
    let (star_c, any_c) = (T::from(b'*'), T::from(b'?'));
    let (mut pi, mut ti, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == any_c || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star_c {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == star_c {
        pi += 1;
    }
    pi == p.len()
}

/// `-?digits(.digits)?` as a number.
pub fn parse_number(s: &str) -> Option<f64> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return None;
    }
    s.parse().ok()
}

fn fixed(s: &str, at: usize, len: usize) -> Option<i64> {
    let part = s.get(at..at + len)?;
    if !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// A date (see the module docs) as milliseconds since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    if !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().ok().map(|v| v * 1000);
    }
    let b = s.as_bytes();
    if s.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (fixed(s, 0, 4)?, fixed(s, 5, 2)?, fixed(s, 8, 2)?);
    if !(1..=12).contains(&mo) || !(1..=days_in_month(y, mo)).contains(&d) {
        return None;
    }
    let day_ms = days_from_civil(y, mo, d) * 86_400_000;
    if s.len() == 10 {
        return Some(day_ms);
    }
    if s.len() < 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, se) = (fixed(s, 11, 2)?, fixed(s, 14, 2)?, fixed(s, 17, 2)?);
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = format!("{:0<3}", &r[..n.min(3)]);
        ms = digits.parse::<i64>().ok()?;
        rest = &r[n..];
    }
    let offset_min = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let r = &rest[1..];
            let (oh, om) = match r.len() {
                5 if r.as_bytes()[2] == b':' => (fixed(r, 0, 2)?, fixed(r, 3, 2)?),
                4 => (fixed(r, 0, 2)?, fixed(r, 2, 2)?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 60 + om)
        }
    };
    Some(day_ms + ((h * 60 + mi - offset_min) * 60 + se) * 1000 + ms)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `ArnEquals`/`ArnLike`: the six components, each a case-sensitive glob.
pub fn arn_matches(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

/// `IpAddress`: `ip` inside `cidr` (an address alone is a /32 or /128).
pub fn ip_matches(cidr: &str, ip: &str) -> bool {
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let (net, len) = match cidr.split_once('/') {
        Some((n, l)) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
            (n, l.parse::<u32>().ok())
        }
        Some(_) => return false,
        None => (cidr, None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return false;
            }
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return false;
            }
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// Does one policy value match one request value, for the positive form of `op`?
fn value_matches(op: BaseOp, pattern: &str, actual: &str) -> bool {
    use BaseOp as B;
    let num = |f: fn(f64, f64) -> bool| match (parse_number(actual), parse_number(pattern)) {
        (Some(a), Some(p)) => f(a, p),
        _ => false,
    };
    let date = |f: fn(i64, i64) -> bool| match (parse_date(actual), parse_date(pattern)) {
        (Some(a), Some(p)) => f(a, p),
        _ => false,
    };
    match op {
        B::StringEquals | B::StringNotEquals | B::BinaryEquals => pattern == actual,
        B::StringEqualsIgnoreCase | B::StringNotEqualsIgnoreCase => {
            pattern.eq_ignore_ascii_case(actual)
        }
        B::StringLike | B::StringNotLike => glob(pattern, actual),
        B::NumericEquals | B::NumericNotEquals => num(|a, p| a == p),
        B::NumericLessThan => num(|a, p| a < p),
        B::NumericLessThanEquals => num(|a, p| a <= p),
        B::NumericGreaterThan => num(|a, p| a > p),
        B::NumericGreaterThanEquals => num(|a, p| a >= p),
        B::DateEquals | B::DateNotEquals => date(|a, p| a == p),
        B::DateLessThan => date(|a, p| a < p),
        B::DateLessThanEquals => date(|a, p| a <= p),
        B::DateGreaterThan => date(|a, p| a > p),
        B::DateGreaterThanEquals => date(|a, p| a >= p),
        B::Bool => {
            (pattern.eq_ignore_ascii_case("true") || pattern.eq_ignore_ascii_case("false"))
                && pattern.eq_ignore_ascii_case(actual)
        }
        B::IpAddress | B::NotIpAddress => ip_matches(pattern, actual),
        B::ArnEquals | B::ArnLike | B::ArnNotEquals | B::ArnNotLike => arn_matches(pattern, actual),
        B::Null | B::Other => false,
    }
}

/// The operator applied to one request value: any policy value matches (negated: none does).
fn holds_for(c: &Condition, actual: &str) -> bool {
    let any = c.values.iter().any(|p| value_matches(c.op.base, p, actual));
    any != c.op.base.negated()
}

/// Does one condition hold for the request?
pub fn condition_truth(c: &Condition, ctx: &RequestContext) -> Truth {
    let value = ctx.lookup(&c.key);
    if c.op.base == BaseOp::Null {
        let wants_absent = c.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        let wants_present = c.values.iter().any(|v| v.eq_ignore_ascii_case("false"));
        return match value {
            KeyValue::Unknown if wants_absent == wants_present => Truth::from_bool(wants_absent),
            KeyValue::Unknown => Truth::unknown(&c.key),
            KeyValue::Absent => Truth::from_bool(wants_absent),
            KeyValue::One(_) | KeyValue::Many(_) => Truth::from_bool(wants_present),
        };
    }
    if c.op.base == BaseOp::Other {
        return Truth::unknown(&c.key);
    }
    let values: Vec<String> = match value {
        KeyValue::Unknown => return Truth::unknown(&c.key),
        KeyValue::Absent => {
            return Truth::from_bool(
                c.op.if_exists
                    || match c.op.set {
                        SetOp::ForAllValues => true,
                        SetOp::ForAnyValue => false,
                        SetOp::None => c.op.base.negated(),
                    },
            );
        }
        KeyValue::One(v) => vec![v],
        KeyValue::Many(v) => v,
    };
    match c.op.set {
        SetOp::ForAnyValue => Truth::from_bool(values.iter().any(|v| holds_for(c, v))),
        SetOp::ForAllValues => Truth::from_bool(values.iter().all(|v| holds_for(c, v))),
        SetOp::None if values.len() == 1 => Truth::from_bool(holds_for(c, &values[0])),
        SetOp::None => Truth::unknown(&c.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::test_support::OLD;

    #[test]
    fn glob_matches_like_iam() {
        assert!(glob("kms:de*", "kms:decrypt"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("5e1f*", OLD));
        assert!(!glob("kms:encrypt", "kms:decrypt"));
    }

    #[test]
    fn numbers_dates_arns_ips() {
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("1e3"), None);
        assert_eq!(parse_number("."), None);
        assert_eq!(parse_date("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_date("86400"), Some(86_400_000));
        assert_eq!(parse_date("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(
            parse_date("2000-02-29T01:00:00+01:00"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_date("2000-02-29T00:00:00.25Z"), Some(951_782_400_250));
        assert_eq!(parse_date("2001-02-29"), None);
        assert!(arn_matches(
            "arn:aws:iam::*:role/*",
            "arn:aws:iam::111122223333:role/svc/signer"
        ));
        assert!(!arn_matches(
            "arn:aws:iam::*:role/*",
            "arn:aws:sts::1:assumed-role/x/y"
        ));
        assert!(!arn_matches("*", "arn:aws:iam::1:role/x"));
        assert!(ip_matches("10.0.0.0/8", "10.1.2.3"));
        assert!(!ip_matches("10.0.0.0/8", "11.1.2.3"));
        assert!(ip_matches("2001:db8::/32", "2001:db8::1"));
        assert!(ip_matches("0.0.0.0/0", "1.2.3.4"));
        assert!(!ip_matches("10.0.0.0/33", "10.0.0.1"));
    }

    #[test]
    fn kleene() {
        let u = Truth::unknown("k");
        assert_eq!(Truth::True.and(u.clone()), u);
        assert_eq!(Truth::False.and(u.clone()), Truth::False);
        assert_eq!(Truth::True.or(u.clone()), Truth::True);
        assert_eq!(u.clone().not(), u);
        assert_eq!(Truth::unknown("a").and(Truth::unknown("b")).keys().len(), 2);
    }
}
