//! The policy change a holder makes during a rotation: every `kms:RecipientAttestation:PCRn`
//! condition of the Allow statements gets a new value list. Also the statement-level diff
//! shown to holders who manage their policies as JSON.

use serde_json::Value;

fn is_key(k: &str, pcr: u8) -> bool {
    k.eq_ignore_ascii_case(&format!("kms:RecipientAttestation:PCR{pcr}"))
}

/// `policy` with each Allow statement's PCR`pcr` condition values replaced by `values`.
/// `Err` when the text is not a policy or no statement conditions on that PCR.
pub fn rewrite(policy: &str, pcr: u8, values: &[String]) -> Result<String, String> {
    let mut v: Value =
        serde_json::from_str(policy).map_err(|e| format!("the key policy is not JSON: {e}"))?;
    let mut changed = 0;
    let statements = match v.get_mut("Statement") {
        Some(Value::Array(a)) => a.iter_mut().collect::<Vec<_>>(),
        Some(s @ Value::Object(_)) => vec![s],
        _ => return Err("the key policy has no Statement".into()),
    };
    for s in statements {
        if s.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        let Some(Value::Object(ops)) = s.get_mut("Condition") else {
            continue;
        };
        for (_, keys) in ops.iter_mut() {
            let Value::Object(keys) = keys else { continue };
            for (k, val) in keys.iter_mut() {
                if is_key(k, pcr) {
                    *val = if values.len() == 1 {
                        Value::String(values[0].clone())
                    } else {
                        Value::Array(values.iter().cloned().map(Value::String).collect())
                    };
                    changed += 1;
                }
            }
        }
    }
    if changed == 0 {
        return Err(format!(
            "no Allow statement conditions on kms:RecipientAttestation:PCR{pcr}"
        ));
    }
    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
}

/// The statements that condition on PCR`pcr`, before and after, as `-`/`+` lines.
pub fn statement_diff(before: &str, after: &str, pcr: u8) -> String {
    let pick = |text: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let list = match &v["Statement"] {
            Value::Array(a) => a.clone(),
            s @ Value::Object(_) => vec![s.clone()],
            _ => Vec::new(),
        };
        list.into_iter()
            .filter(|s| {
                s["Condition"].as_object().is_some_and(|ops| {
                    ops.values().any(|keys| {
                        keys.as_object()
                            .is_some_and(|k| k.keys().any(|k| is_key(k, pcr)))
                    })
                })
            })
            .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default())
            .collect()
    };
    let (b, a) = (pick(before), pick(after));
    let mut out = String::new();
    for (x, y) in b.iter().zip(a.iter()) {
        let xl: Vec<&str> = x.lines().collect();
        let yl: Vec<&str> = y.lines().collect();
        // Line-wise: unchanged lines once, changed runs as -/+ (statements differ only in the
        // condition values, so this stays readable).
        let (mut i, mut j) = (0, 0);
        while i < xl.len() || j < yl.len() {
            if i < xl.len() && j < yl.len() && xl[i] == yl[j] {
                out.push_str(&format!("  {}\n", xl[i]));
                i += 1;
                j += 1;
                continue;
            }
            // Find the next line common to both.
            let next = (i..xl.len()).find_map(|ii| {
                (j..yl.len())
                    .find(|jj| xl[ii] == yl[*jj])
                    .map(|jj| (ii, jj))
            });
            let (ni, nj) = next.unwrap_or((xl.len(), yl.len()));
            for l in &xl[i..ni] {
                out.push_str(&format!("- {l}\n"));
            }
            for l in &yl[j..nj] {
                out.push_str(&format!("+ {l}\n"));
            }
            i = ni;
            j = nj;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"kms:*","Resource":"*"},
        {"Sid":"AttestedDecrypt","Effect":"Allow","Principal":{"AWS":"r"},"Action":"kms:Decrypt","Resource":"*",
         "Condition":{"StringEqualsIgnoreCase":{"kms:RecipientAttestation:PCR0":"aa","kms:RecipientAttestation:PCR8":"cc"}}}]}"#;

    #[test]
    fn only_the_rotated_pcr_changes() {
        let out = rewrite(P, 0, &["bb".into(), "aa".into()]).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        let c = &v["Statement"][1]["Condition"]["StringEqualsIgnoreCase"];
        assert_eq!(
            c["kms:RecipientAttestation:PCR0"],
            serde_json::json!(["bb", "aa"])
        );
        assert_eq!(c["kms:RecipientAttestation:PCR8"], "cc");
        let back = rewrite(&out, 0, &["bb".into()]).unwrap();
        let v: Value = serde_json::from_str(&back).unwrap();
        assert_eq!(
            v["Statement"][1]["Condition"]["StringEqualsIgnoreCase"]["kms:RecipientAttestation:PCR0"],
            "bb"
        );
        let d = statement_diff(P, &out, 0);
        assert!(d.contains("- ") && d.contains("+ "), "{d}");
        assert!(d.contains("\"bb\""), "{d}");
        assert!(!d.contains("Admin"), "{d}");
    }

    #[test]
    fn a_policy_without_the_condition_is_refused() {
        assert!(rewrite(P, 1, &["x".into()]).unwrap_err().contains("PCR1"));
        assert!(rewrite("nope", 0, &[]).is_err());
    }
}
