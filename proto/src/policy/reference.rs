//! A REFERENCE evaluator, for the differential test only: written separately from the
//! production evaluator, straight from AWS's documented rules, on the raw policy JSON. It calls
//! nothing of `document`, `context`, `conditions`, `evaluation` or `verdict`: its own JSON
//! walking, principal and ARN parsing, wildcard matcher, number/date/IP parsing and
//! three-valued logic. Slow and simple on purpose.
//!
//! Rules followed (one comment per rule names its page):
//! - IAM policy evaluation logic, incl. cross-account and permissions boundaries:
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html
//! - Condition operators (absent keys, negation, IfExists, Null, set operators):
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-single-vs-multi-valued-context-keys.html
//! - Principal / NotPrincipal:
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html
//!   https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html
//! - KMS key policies (Resource "*" = this key, no Action/Resource = no effect, root =
//!   delegation to IAM), external accounts, Nitro Enclaves condition keys:
//!   https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-overview.html
//!   https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-root-enable-iam
//!   https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-modifying-external-accounts.html
//!   https://docs.aws.amazon.com/kms/latest/developerguide/conditions-nitro-enclaves.html
//!
//! Where AWS leaves a choice open the reference makes the same documented choice as
//! production (see `conditions` and `verdict` module docs): ASCII case folding, the date and
//! number grammars, a plain operator on a multivalued key is not judged, a `Null` with both
//! `"true"` and `"false"` is true whatever the key.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Three-valued truth: yes, no, or it depends on these keys (lower case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum T3 {
    Yes,
    No,
    Maybe(BTreeSet<String>),
}

fn yes_if(b: bool) -> T3 {
    if b { T3::Yes } else { T3::No }
}

fn maybe(k: &str) -> T3 {
    let mut s = BTreeSet::new();
    s.insert(k.to_lowercase());
    T3::Maybe(s)
}

fn and3(a: T3, b: T3) -> T3 {
    if a == T3::No || b == T3::No {
        return T3::No;
    }
    if a == T3::Yes {
        return b;
    }
    if b == T3::Yes {
        return a;
    }
    let (T3::Maybe(mut x), T3::Maybe(y)) = (a, b) else {
        unreachable!()
    };
    x.extend(y);
    T3::Maybe(x)
}

fn or3(a: T3, b: T3) -> T3 {
    if a == T3::Yes || b == T3::Yes {
        return T3::Yes;
    }
    if a == T3::No {
        return b;
    }
    if b == T3::No {
        return a;
    }
    let (T3::Maybe(mut x), T3::Maybe(y)) = (a, b) else {
        unreachable!()
    };
    x.extend(y);
    T3::Maybe(x)
}

fn not3(a: T3) -> T3 {
    match a {
        T3::Yes => T3::No,
        T3::No => T3::Yes,
        m => m,
    }
}

fn keys3(a: &T3) -> BTreeSet<String> {
    match a {
        T3::Maybe(k) => k.clone(),
        _ => BTreeSet::new(),
    }
}

const KEY_ARN: &str = "(key arn)";
const SESSION: &str = "(role session name)";

/// The world a request lives in.
#[derive(Debug, Clone)]
pub(super) struct World {
    pub principal: String,
    pub principal_account: Option<String>,
    pub caller_account: Option<String>,
    pub key_arn: Option<String>,
    pub region: Option<String>,
    pub action: String,
    pub ec: Option<Vec<(String, String)>>,
    pub pcrs: Vec<(u8, String)>,
    pub recipient: bool,
    pub tls: Option<bool>,
    pub now: Option<i64>,
    /// Keys otherwise unknowable given a concrete value (lower case; `None`: absent).
    pub forced: BTreeMap<String, Option<Vec<String>>>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Iam {
    pub identity: Option<Vec<(String, Value)>>,
    pub boundary: Option<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Deny {
    /// ('k' key policy | 'i' identity | 'b' boundary, policy name, statement index)
    Explicit(char, String, usize),
    /// No allow: 'k' the key policy grants nothing, 'i' identity policies lack it, 'b' the
    /// boundary.
    Implicit(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    Allowed,
    Denied(Deny),
    DependsOn(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Answer {
    pub outcome: Outcome,
    pub allowing: Vec<usize>,
    pub denying: Vec<usize>,
}

// ---------------------------------------------------------------- wildcards and value grammars

/// `*` any run, `?` one character (recursive, no cleverness).
fn wild(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('*') => (0..=s.len()).any(|i| wild(&p[1..], &s[i..])),
        Some('?') => !s.is_empty() && wild(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && wild(&p[1..], &s[1..]),
    }
}

fn wildcard(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    wild(&p, &t)
}

fn number(s: &str) -> Option<f64> {
    let mut seen_digit_before = false;
    let mut seen_dot = false;
    let mut digits_after = 0;
    for (i, c) in s.chars().enumerate() {
        match c {
            '-' if i == 0 => {}
            '0'..='9' => {
                if seen_dot {
                    digits_after += 1
                } else {
                    seen_digit_before = true
                }
            }
            '.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if !seen_digit_before || (seen_dot && digits_after == 0) {
        return None;
    }
    s.parse().ok()
}

fn leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_len(y: i64, m: i64) -> i64 {
    [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ][(m - 1) as usize]
}

/// Days since 1970-01-01, by counting years and months.
fn days(y: i64, m: i64, d: i64) -> i64 {
    let mut n = 0;
    if y >= 1970 {
        for yy in 1970..y {
            n += if leap(yy) { 366 } else { 365 };
        }
    } else {
        for yy in y..1970 {
            n -= if leap(yy) { 366 } else { 365 };
        }
    }
    for mm in 1..m {
        n += month_len(y, mm);
    }
    n + d - 1
}

fn digits_at(s: &str, from: usize, n: usize) -> Option<i64> {
    let part: String = s.chars().skip(from).take(n).collect();
    if part.chars().count() != n || !part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

/// Epoch seconds (up to 12 digits), `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM:SS[.f][Z|±HH:MM|±HHMM]`,
/// as milliseconds.
fn date_ms(s: &str) -> Option<i64> {
    if !s.is_empty() && s.chars().count() <= 12 && s.chars().all(|c| c.is_ascii_digit()) {
        return Some(s.parse::<i64>().ok()? * 1000);
    }
    let c: Vec<char> = s.chars().collect();
    if c.len() < 10 || c[4] != '-' || c[7] != '-' {
        return None;
    }
    let y = digits_at(s, 0, 4)?;
    let mo = digits_at(s, 5, 2)?;
    let d = digits_at(s, 8, 2)?;
    if !(1..=12).contains(&mo) || d < 1 || d > month_len(y, mo) {
        return None;
    }
    let base = days(y, mo, d) * 86_400_000;
    if c.len() == 10 {
        return Some(base);
    }
    if c.len() < 19 || c[10] != 'T' || c[13] != ':' || c[16] != ':' {
        return None;
    }
    let h = digits_at(s, 11, 2)?;
    let mi = digits_at(s, 14, 2)?;
    let se = digits_at(s, 17, 2)?;
    if h >= 24 || mi >= 60 || se >= 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0;
    if i < c.len() && c[i] == '.' {
        i += 1;
        let start = i;
        while i < c.len() && c[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let mut f: String = c[start..i].iter().take(3).collect();
        while f.len() < 3 {
            f.push('0');
        }
        frac_ms = f.parse::<i64>().ok()?;
    }
    let zone: String = c[i..].iter().collect();
    let offset = if zone.is_empty() || zone == "Z" {
        0
    } else {
        let sign = match zone.chars().next() {
            Some('+') => 1,
            Some('-') => -1,
            _ => return None,
        };
        let z: String = zone.chars().skip(1).collect();
        let (zh, zm) = if z.chars().count() == 5 && z.chars().nth(2) == Some(':') {
            (digits_at(&z, 0, 2)?, digits_at(&z, 3, 2)?)
        } else if z.chars().count() == 4 {
            (digits_at(&z, 0, 2)?, digits_at(&z, 2, 2)?)
        } else {
            return None;
        };
        if zh >= 24 || zm >= 60 {
            return None;
        }
        sign * (zh * 60 + zm) * 60_000
    };
    Some(base + h * 3_600_000 + mi * 60_000 + se * 1000 + frac_ms - offset)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for epoch seconds (counting forward from 1970).
fn iso(t: i64) -> String {
    let mut day = t.div_euclid(86_400);
    let sec = t.rem_euclid(86_400);
    let mut y = 1970;
    loop {
        let len = if leap(y) { 366 } else { 365 };
        if day < 0 {
            y -= 1;
            day += if leap(y) { 366 } else { 365 };
        } else if day >= len {
            day -= len;
            y += 1;
        } else {
            break;
        }
    }
    let mut m = 1;
    while day >= month_len(y, m) {
        day -= month_len(y, m);
        m += 1;
    }
    format!(
        "{y:04}-{m:02}-{:02}T{:02}:{:02}:{:02}Z",
        day + 1,
        sec / 3600,
        (sec % 3600) / 60,
        sec % 60
    )
}

/// The six colon-separated ARN components (the last keeps its colons).
fn arn_parts(s: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    for ch in s.chars() {
        if ch == ':' && parts.len() < 5 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    (parts.len() == 6).then_some(parts)
}

fn arn_like(pattern: &str, arn: &str) -> bool {
    match (arn_parts(pattern), arn_parts(arn)) {
        (Some(p), Some(a)) => p.iter().zip(a.iter()).all(|(p, a)| wildcard(p, a)),
        _ => false,
    }
}

fn bits(ip: std::net::IpAddr) -> Vec<bool> {
    let bytes: Vec<u8> = match ip {
        std::net::IpAddr::V4(v) => v.octets().to_vec(),
        std::net::IpAddr::V6(v) => v.octets().to_vec(),
    };
    bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1 == 1))
        .collect()
}

fn in_cidr(cidr: &str, ip: &str) -> bool {
    let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let (net, prefix) = match cidr.find('/') {
        None => (cidr, None),
        Some(i) => {
            let p = &cidr[i + 1..];
            if p.is_empty() || p.len() > 3 || !p.chars().all(|c| c.is_ascii_digit()) {
                return false;
            }
            (&cidr[..i], Some(p.parse::<usize>().unwrap_or(999)))
        }
    };
    let Ok(net) = net.parse::<std::net::IpAddr>() else {
        return false;
    };
    let (a, n) = (bits(addr), bits(net));
    if a.len() != n.len() {
        return false;
    }
    let prefix = prefix.unwrap_or(n.len());
    prefix <= n.len() && a[..prefix] == n[..prefix]
}

// ---------------------------------------------------------------------------- the request context

#[derive(Debug, Clone)]
enum Cv {
    Missing,
    Single(String),
    List(Vec<String>),
    Unknowable,
}

fn pcr_of(suffix: &str) -> Option<u8> {
    if suffix == "imagesha384" {
        return Some(0);
    }
    let n = suffix.strip_prefix("pcr")?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    let v: u32 = n.parse().ok()?;
    (v <= 31).then_some(v as u8)
}

fn account_of_arn(s: &str) -> Option<String> {
    let parts = arn_parts(s)?;
    (parts[0] == "arn" && !parts[4].is_empty()).then(|| parts[4].clone())
}

fn is_session(s: &str) -> bool {
    arn_parts(s).is_some_and(|p| p[2] == "sts" && p[5].starts_with("assumed-role/"))
}

fn lookup(w: &World, key: &str) -> Cv {
    let k = key.to_lowercase();
    if let Some(suffix) = k.strip_prefix("kms:recipientattestation:") {
        // conditions-nitro-enclaves: the keys exist only with a Recipient; ImageSha384 is
        // PCR0; KMS defines PCR0..PCR31.
        let Some(n) = pcr_of(suffix) else {
            return Cv::Missing;
        };
        if !w.recipient {
            return Cv::Missing;
        }
        return match w.pcrs.iter().find(|(i, _)| *i == n) {
            Some((_, v)) => Cv::Single(v.clone()),
            None => Cv::Missing,
        };
    }
    let unknowable = || match w.forced.get(&k) {
        None => Cv::Unknowable,
        Some(None) => Cv::Missing,
        Some(Some(v)) if v.len() == 1 => Cv::Single(v[0].clone()),
        Some(Some(v)) => Cv::List(v.clone()),
    };
    let opt = |v: Option<String>| match v {
        Some(v) => Cv::Single(v),
        None => unknowable(),
    };
    if let Some(name) = k.strip_prefix("kms:encryptioncontext:") {
        let Some(ec) = &w.ec else {
            return unknowable();
        };
        let hits: Vec<&(String, String)> = ec
            .iter()
            .filter(|(n, _)| n.to_lowercase() == name)
            .collect();
        return match hits.len() {
            0 => Cv::Missing,
            1 => Cv::Single(hits[0].1.clone()),
            _ => unknowable(),
        };
    }
    match k.as_str() {
        "aws:principalarn" => {
            // For a role session the key is the role's ARN, path included: not derivable from
            // a session ARN.
            if is_session(&w.principal) {
                unknowable()
            } else {
                Cv::Single(w.principal.clone())
            }
        }
        "aws:principalaccount" => opt(w.principal_account.clone()),
        "kms:calleraccount" => opt(w.caller_account.clone()),
        "aws:resourceaccount" => opt(w.key_arn.as_deref().and_then(account_of_arn)),
        "aws:requestedregion" => opt(w.region.clone()),
        "aws:securetransport" => opt(w.tls.map(|b| if b { "true" } else { "false" }.to_owned())),
        "aws:currenttime" => opt(w.now.map(iso)),
        "aws:epochtime" => opt(w.now.map(|t| format!("{t}"))),
        "kms:encryptioncontextkeys" => match &w.ec {
            None => unknowable(),
            Some(ec) if ec.is_empty() => Cv::Missing,
            Some(ec) => {
                let mut names: Vec<String> = ec.iter().map(|(n, _)| n.clone()).collect();
                names.sort();
                names.dedup();
                Cv::List(names)
            }
        },
        _ => unknowable(),
    }
}

// ------------------------------------------------------------------------------------ conditions

/// (family, negated) of an operator's base name; None: not an IAM operator.
fn base_op(name: &str) -> Option<(&'static str, bool)> {
    Some(match name {
        "StringEquals" => ("streq", false),
        "StringNotEquals" => ("streq", true),
        "StringEqualsIgnoreCase" => ("strieq", false),
        "StringNotEqualsIgnoreCase" => ("strieq", true),
        "StringLike" => ("strlike", false),
        "StringNotLike" => ("strlike", true),
        "NumericEquals" => ("num=", false),
        "NumericNotEquals" => ("num=", true),
        "NumericLessThan" => ("num<", false),
        "NumericLessThanEquals" => ("num<=", false),
        "NumericGreaterThan" => ("num>", false),
        "NumericGreaterThanEquals" => ("num>=", false),
        "DateEquals" => ("date=", false),
        "DateNotEquals" => ("date=", true),
        "DateLessThan" => ("date<", false),
        "DateLessThanEquals" => ("date<=", false),
        "DateGreaterThan" => ("date>", false),
        "DateGreaterThanEquals" => ("date>=", false),
        "Bool" => ("bool", false),
        "BinaryEquals" => ("bin", false),
        "IpAddress" => ("ip", false),
        "NotIpAddress" => ("ip", true),
        "ArnEquals" | "ArnLike" => ("arn", false),
        "ArnNotEquals" | "ArnNotLike" => ("arn", true),
        "Null" => ("null", false),
        _ => return None,
    })
}

fn one_matches(family: &str, policy_value: &str, request_value: &str) -> bool {
    let num = |f: &dyn Fn(f64, f64) -> bool| match (number(request_value), number(policy_value)) {
        (Some(r), Some(p)) => f(r, p),
        _ => false,
    };
    let date = |f: &dyn Fn(i64, i64) -> bool| match (date_ms(request_value), date_ms(policy_value))
    {
        (Some(r), Some(p)) => f(r, p),
        _ => false,
    };
    match family {
        "streq" | "bin" => policy_value == request_value,
        "strieq" => policy_value.eq_ignore_ascii_case(request_value),
        "strlike" => wildcard(policy_value, request_value),
        "num=" => num(&|r, p| r == p),
        "num<" => num(&|r, p| r < p),
        "num<=" => num(&|r, p| r <= p),
        "num>" => num(&|r, p| r > p),
        "num>=" => num(&|r, p| r >= p),
        "date=" => date(&|r, p| r == p),
        "date<" => date(&|r, p| r < p),
        "date<=" => date(&|r, p| r <= p),
        "date>" => date(&|r, p| r > p),
        "date>=" => date(&|r, p| r >= p),
        "bool" => {
            let p = policy_value.to_ascii_lowercase();
            (p == "true" || p == "false") && p == request_value.to_ascii_lowercase()
        }
        "ip" => in_cidr(policy_value, request_value),
        "arn" => arn_like(policy_value, request_value),
        _ => false,
    }
}

fn values_of(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().flat_map(values_of).collect(),
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        _ => vec![],
    }
}

/// One `operator: {key: values}` entry.
fn condition(w: &World, operator: &str, key: &str, policy_values: &[String]) -> T3 {
    // Qualifiers: "ForAnyValue:" / "ForAllValues:" prefix, "IfExists" suffix.
    let (set, rest) = match operator.split_once(':') {
        Some(("ForAnyValue", r)) => ("any", r),
        Some(("ForAllValues", r)) => ("all", r),
        _ => ("", operator),
    };
    let (if_exists, name) = if rest.len() > 8 && rest.ends_with("IfExists") {
        (true, &rest[..rest.len() - 8])
    } else {
        (false, rest)
    };
    let value = lookup(w, key);
    let Some((family, negated)) = base_op(name) else {
        // Not an IAM operator: not judged.
        return maybe(key);
    };
    if family == "null" {
        // Null: "true" → the key is absent, "false" → present; several values OR.
        let want_absent = policy_values.iter().any(|v| v.eq_ignore_ascii_case("true"));
        let want_present = policy_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case("false"));
        let present = match value {
            Cv::Missing => false,
            Cv::Single(_) | Cv::List(_) => true,
            Cv::Unknowable => {
                // Judged both ways.
                let if_absent = want_absent;
                let if_present = want_present;
                return if if_absent == if_present {
                    yes_if(if_absent)
                } else {
                    maybe(key)
                };
            }
        };
        return yes_if(if present { want_present } else { want_absent });
    }
    let request_values = match value {
        Cv::Unknowable => return maybe(key),
        Cv::Missing => {
            // Absent key: IfExists → true; ForAllValues → true; ForAnyValue → false;
            // otherwise a negated operator is true and a positive one false.
            if if_exists {
                return T3::Yes;
            }
            return match set {
                "all" => T3::Yes,
                "any" => T3::No,
                _ => yes_if(negated),
            };
        }
        Cv::Single(v) => vec![v],
        Cv::List(v) => v,
    };
    let per_value = |rv: &String| {
        let hit = policy_values.iter().any(|pv| one_matches(family, pv, rv));
        if negated { !hit } else { hit }
    };
    match set {
        "any" => yes_if(request_values.iter().any(per_value)),
        "all" => yes_if(request_values.iter().all(per_value)),
        _ if request_values.len() == 1 => yes_if(per_value(&request_values[0])),
        // A multivalued key needs a set operator: not judged.
        _ => maybe(key),
    }
}

// ------------------------------------------------------------------------------------ principals

/// (kind, partition, account, role name, whole) of a principal string.
#[derive(Debug)]
struct Who {
    kind: &'static str,
    partition: String,
    account: String,
    role: String,
}

fn who(s: &str) -> Who {
    if s.len() == 12 && s.chars().all(|c| c.is_ascii_digit()) {
        return Who {
            kind: "account",
            partition: String::new(),
            account: s.to_owned(),
            role: String::new(),
        };
    }
    let Some(p) = arn_parts(s).filter(|p| p[0] == "arn") else {
        return Who {
            kind: "other",
            partition: String::new(),
            account: String::new(),
            role: String::new(),
        };
    };
    let mut w = Who {
        kind: "other",
        partition: p[1].clone(),
        account: p[4].clone(),
        role: String::new(),
    };
    if p[2] == "iam" && p[5] == "root" {
        w.kind = "root";
    } else if p[2] == "iam" && p[5].starts_with("role/") {
        w.kind = "role";
        // The role's name is the last segment; the path is what comes between.
        w.role = p[5].split('/').next_back().unwrap_or("").to_owned();
    } else if p[2] == "sts" && p[5].starts_with("assumed-role/") {
        w.kind = "session";
        w.role = p[5].split('/').nth(1).unwrap_or("").to_owned();
    }
    w
}

fn caller_account(caller: &str) -> String {
    who(caller).account
}

fn names_the_account(entry: &str, caller: &str) -> bool {
    let e = who(entry);
    let c = who(caller);
    match e.kind {
        "account" => !c.account.is_empty() && e.account == c.account,
        "root" => {
            !c.account.is_empty()
                && e.account == c.account
                && arn_parts(caller).is_some_and(|p| p[1] == e.partition)
        }
        _ => false,
    }
}

/// (session, direct, account) for one entry of Principal.
fn entry(entry: &str, caller: &str) -> (T3, T3, T3) {
    let (e, c) = (who(entry), who(caller));
    if e.kind == "account" || e.kind == "root" {
        return (T3::No, T3::No, yes_if(names_the_account(entry, caller)));
    }
    let same_role = e.partition == c.partition && e.account == c.account && e.role == c.role;
    match (e.kind, c.kind) {
        // A role ARN (any path) covers its sessions, which drop the path.
        ("role", "session") => (T3::No, yes_if(same_role), T3::No),
        // One named session of our role, and we do not know our session's name.
        ("session", "role") if same_role => (maybe(SESSION), T3::No, T3::No),
        ("session", _) => (yes_if(entry == caller), T3::No, T3::No),
        _ => (T3::No, yes_if(entry == caller), T3::No),
    }
}

/// Principal element → (session, direct, account).
fn principal_element(v: &Value, caller: &str) -> (T3, T3, T3) {
    let mut acc = (T3::No, T3::No, T3::No);
    match v {
        Value::String(s) if s == "*" => acc.1 = T3::Yes,
        Value::Object(m) => {
            if let Some(aws) = m.get("AWS") {
                for e in values_of(aws) {
                    if e == "*" {
                        acc.1 = T3::Yes;
                        continue;
                    }
                    let (s, d, a) = entry(&e, caller);
                    acc = (or3(acc.0, s), or3(acc.1, d), or3(acc.2, a));
                }
            }
        }
        _ => {}
    }
    acc
}

/// Is the caller listed by a NotPrincipal element? A role session is listed only when its
/// session ARN, its role's ARN and its account are all there (NotPrincipal page: AWS may
/// evaluate the account, then the role, then the session).
fn listed(v: &Value, caller: &str) -> T3 {
    let entries: Vec<String> = match v {
        Value::String(s) if s == "*" => return T3::Yes,
        Value::Object(m) => match m.get("AWS") {
            Some(aws) => values_of(aws),
            None => return T3::No,
        },
        _ => return T3::No,
    };
    if entries.iter().any(|e| e == "*") {
        return T3::Yes;
    }
    let c = who(caller);
    let account = yes_if(entries.iter().any(|e| names_the_account(e, caller)));
    let exact = yes_if(entries.iter().any(|e| e == caller));
    match c.kind {
        "session" => {
            let role = entries.iter().any(|e| {
                let e = who(e);
                e.kind == "role"
                    && e.partition == c.partition
                    && e.account == c.account
                    && e.role == c.role
            });
            and3(and3(exact, yes_if(role)), account)
        }
        "role" => {
            let some_session = entries.iter().any(|e| {
                let e = who(e);
                e.kind == "session"
                    && e.partition == c.partition
                    && e.account == c.account
                    && e.role == c.role
            });
            let session = if some_session { maybe(SESSION) } else { T3::No };
            and3(and3(session, exact), account)
        }
        "account" | "root" => account,
        _ => and3(exact, account),
    }
}

// ------------------------------------------------------------------------------------ statements

struct St {
    allow: bool,
    session: T3,
    direct: T3,
    account: T3,
    rest: T3,
}

impl St {
    fn applies(&self) -> T3 {
        and3(
            or3(
                or3(self.session.clone(), self.direct.clone()),
                self.account.clone(),
            ),
            self.rest.clone(),
        )
    }
}

fn statements(doc: &Value) -> Vec<&Value> {
    match doc.get("Statement") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => vec![],
    }
}

fn statement(s: &Value, w: &World, key_policy: bool, boundary_attached: bool) -> St {
    let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
    // Principal: identity-based policies have none (the identity they are attached to).
    let (session, direct, account) = if !key_policy {
        (T3::No, T3::Yes, T3::No)
    } else if let Some(p) = s.get("Principal") {
        principal_element(p, &w.principal)
    } else if let Some(np) = s.get("NotPrincipal") {
        if allow {
            // NotPrincipal with Allow is not supported: it grants nothing.
            (T3::No, T3::No, T3::No)
        } else if boundary_attached {
            // A Deny with NotPrincipal always denies a principal with a permissions boundary.
            (T3::No, T3::Yes, T3::No)
        } else {
            (T3::No, not3(listed(np, &w.principal)), T3::No)
        }
    } else {
        (T3::No, T3::No, T3::No)
    };
    // Action / NotAction, case-insensitive wildcards; neither: no effect.
    let action = match (s.get("Action"), s.get("NotAction")) {
        (Some(a), _) => yes_if(
            values_of(a)
                .iter()
                .any(|p| wildcard(&p.to_lowercase(), &w.action.to_lowercase())),
        ),
        (None, Some(a)) => yes_if(
            !values_of(a)
                .iter()
                .any(|p| wildcard(&p.to_lowercase(), &w.action.to_lowercase())),
        ),
        (None, None) => T3::No,
    };
    // Resource / NotResource: "*" is this key; a pattern must match the key ARN; neither: no
    // effect.
    let one_resource = |p: &String| {
        if p == "*" {
            T3::Yes
        } else {
            match &w.key_arn {
                Some(k) => yes_if(wildcard(p, k)),
                None => maybe(KEY_ARN),
            }
        }
    };
    let resource = match (s.get("Resource"), s.get("NotResource")) {
        (Some(r), _) => values_of(r).iter().map(one_resource).fold(T3::No, or3),
        (None, Some(r)) => not3(values_of(r).iter().map(one_resource).fold(T3::No, or3)),
        (None, None) => T3::No,
    };
    // Conditions: every operator, every key: AND.
    let mut conds = T3::Yes;
    if let Some(Value::Object(ops)) = s.get("Condition") {
        for (op, keys) in ops {
            if let Value::Object(keys) = keys {
                for (key, vals) in keys {
                    conds = and3(conds, condition(w, op, key, &values_of(vals)));
                }
            }
        }
    }
    St {
        allow,
        session,
        direct,
        account,
        rest: and3(and3(action, resource), conds),
    }
}

// ------------------------------------------------------------------------------------ the verdict

/// Allow and Deny of identity-based policies (or the boundary), and the first definite Deny.
fn side(policies: &[(String, Value)], w: &World) -> (T3, T3, Option<(String, usize)>) {
    let mut allow = T3::No;
    let mut deny = T3::No;
    let mut first = None;
    for (name, doc) in policies {
        for (i, s) in statements(doc).into_iter().enumerate() {
            let st = statement(s, w, false, false);
            let a = st.applies();
            if st.allow {
                allow = or3(allow, a);
            } else {
                if a == T3::Yes && first.is_none() {
                    first = Some((name.clone(), i));
                }
                deny = or3(deny, a);
            }
        }
    }
    (allow, deny, first)
}

pub(super) fn decide(key_policy: &Value, w: &World, iam: &Iam) -> Answer {
    let boundary_attached = iam.identity.is_some() && iam.boundary.is_some();
    let sts: Vec<St> = statements(key_policy)
        .into_iter()
        .map(|s| statement(s, w, true, boundary_attached))
        .collect();
    let mut k_session = T3::No;
    let mut k_direct = T3::No;
    let mut k_any = T3::No;
    let mut k_deny = T3::No;
    let mut allowing = Vec::new();
    let mut denying = Vec::new();
    for (i, st) in sts.iter().enumerate() {
        if st.allow {
            k_session = or3(k_session, and3(st.session.clone(), st.rest.clone()));
            k_direct = or3(k_direct, and3(st.direct.clone(), st.rest.clone()));
            k_any = or3(k_any, st.applies());
            if st.applies() == T3::Yes {
                allowing.push(i);
            }
        } else {
            k_deny = or3(k_deny, st.applies());
            if st.applies() == T3::Yes {
                denying.push(i);
            }
        }
    }
    // Identity side: not given → assumed to allow (and no boundary).
    let (i_allow, i_deny, i_first) = match &iam.identity {
        Some(p) => side(p, w),
        None => (T3::Yes, T3::No, None),
    };
    let (b_allow, b_deny, b_first) = match (&iam.identity, &iam.boundary) {
        (Some(_), Some(b)) => side(std::slice::from_ref(b), w),
        _ => (T3::Yes, T3::No, None),
    };
    // Same account? Only known with the key ARN.
    let same = match (&w.key_arn, &w.principal_account) {
        (Some(k), Some(pa)) => match account_of_arn(k) {
            Some(ka) => yes_if(&ka == pa),
            None => maybe(KEY_ARN),
        },
        _ => maybe(KEY_ARN),
    };
    // Same account: a grant to the session suffices; to the role (or "*") suffices within the
    // boundary; to the account needs an identity-based Allow within the boundary.
    let a_same = or3(
        k_session.clone(),
        and3(
            b_allow.clone(),
            or3(k_direct.clone(), and3(k_any.clone(), i_allow.clone())),
        ),
    );
    // Another account: both sides must allow.
    let a_cross = and3(and3(k_any.clone(), i_allow.clone()), b_allow.clone());
    let allow = match &same {
        T3::Yes => a_same.clone(),
        T3::No => a_cross.clone(),
        T3::Maybe(k) => {
            // The two branches judged both ways: a_cross implies a_same.
            if a_cross == T3::Yes {
                T3::Yes
            } else if a_same == T3::No {
                T3::No
            } else {
                let mut all = k.clone();
                all.extend(keys3(&a_same));
                all.extend(keys3(&a_cross));
                T3::Maybe(all)
            }
        }
    };
    let deny = or3(or3(k_deny, i_deny), b_deny);
    let outcome = if deny == T3::Yes {
        // Explicit deny anywhere wins: the key policy's first, else the identity policies',
        // else the boundary's.
        Outcome::Denied(if let Some(&i) = denying.first() {
            Deny::Explicit('k', String::new(), i)
        } else if let Some((n, i)) = i_first {
            Deny::Explicit('i', n, i)
        } else {
            let (n, i) = b_first.expect("a definite deny");
            Deny::Explicit('b', n, i)
        })
    } else if allow == T3::No {
        let direct = or3(k_session.clone(), k_direct.clone());
        let needs_identity = same != T3::Yes || direct == T3::No;
        Outcome::Denied(Deny::Implicit(if k_any == T3::No {
            'k'
        } else if needs_identity && i_allow == T3::No {
            'i'
        } else {
            'b'
        }))
    } else if allow == T3::Yes && deny == T3::No {
        Outcome::Allowed
    } else {
        let mut keys = keys3(&deny);
        keys.extend(keys3(&allow));
        Outcome::DependsOn(keys)
    };
    Answer {
        outcome,
        allowing,
        denying,
    }
}

/// Is `key` one the world cannot tell (and not already forced)?
pub(super) fn unknowable(w: &World, key: &str) -> bool {
    matches!(lookup(w, key), Cv::Unknowable)
}

/// Every condition key used in a document.
pub(super) fn condition_keys(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in statements(doc) {
        if let Some(Value::Object(ops)) = s.get("Condition") {
            for keys in ops.values() {
                if let Value::Object(keys) = keys {
                    out.extend(keys.keys().map(|k| k.to_lowercase()));
                }
            }
        }
    }
    out
}

pub(super) fn caller_account_of(principal: &str) -> Option<String> {
    Some(caller_account(principal)).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_helpers() {
        assert!(wildcard("kms:de*", "kms:decrypt"));
        assert!(!wildcard("a?c", "ac"));
        assert_eq!(date_ms("2000-02-29T01:00:00+01:00"), Some(951_782_400_000));
        assert_eq!(iso(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(iso(-1), "1969-12-31T23:59:59Z");
        assert!(in_cidr("10.0.0.0/8", "10.9.9.9"));
        assert!(!in_cidr("10.0.0.0/8", "2001:db8::1"));
        assert_eq!(number("1."), None);
        assert_eq!(
            arn_parts("arn:aws:kms:r:1:key/a:b").unwrap()[5],
            "key/a:b".to_owned()
        );
    }
}
