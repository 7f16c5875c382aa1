//! A finding: what every check returns (DESIGN.md "Findings"). Renderers (human, JSON, JUnit)
//! take these; checks never print.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remediation {
    pub text: String,
    #[serde(default)]
    pub commands: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable, kebab-case, grouped by family (`policy.wrong-action`).
    pub code: String,
    pub severity: Severity,
    pub summary: String,
    /// Facts that support it (statement Sid/index, key, value, holder, ...).
    #[serde(default)]
    pub evidence: serde_json::Map<String, serde_json::Value>,
    pub remediation: Remediation,
    /// `runbooks/FILE.md#anchor`.
    pub runbook: String,
    /// The command that prints the runbook section from the binary: `ccctl explain CODE`.
    #[serde(default)]
    pub explain: String,
    /// The code of the finding in the same report that explains this one (its cause), when
    /// there is one: renderers show this finding under it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caused_by: Option<String>,
}

impl Finding {
    pub fn new(code: &str, severity: Severity, summary: impl Into<String>) -> Self {
        let family = code.split('.').next().unwrap_or("misc");
        Finding {
            code: code.to_owned(),
            severity,
            summary: summary.into(),
            evidence: serde_json::Map::new(),
            remediation: Remediation::default(),
            runbook: format!("runbooks/{family}.md#{}", code.replace('.', "-")),
            explain: format!("ccctl explain {code}"),
            caused_by: None,
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.evidence.insert(key.to_owned(), value.into());
        self
    }

    pub fn fix(mut self, text: impl Into<String>, commands: &[&str]) -> Self {
        self.remediation = Remediation {
            text: text.into(),
            commands: commands.iter().map(|c| (*c).to_owned()).collect(),
        };
        self
    }
}
