//! What `nitro-cli` prints, parsed leniently: the JSON of `run-enclave`, and the `[ Exx ]`
//! error layout every failing subcommand writes to stderr (exit status = the code).

use serde::{Deserialize, Serialize};

/// The object `nitro-cli run-enclave` prints on stdout. Unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnclave {
    #[serde(rename = "EnclaveName", default)]
    pub enclave_name: Option<String>,
    #[serde(rename = "EnclaveID")]
    pub enclave_id: String,
    #[serde(rename = "ProcessID", default)]
    pub process_id: Option<u64>,
    #[serde(rename = "EnclaveCID")]
    pub enclave_cid: u64,
    #[serde(rename = "NumberOfCPUs", default)]
    pub number_of_cpus: Option<u64>,
    #[serde(rename = "CPUIDs", default)]
    pub cpu_ids: Vec<u64>,
    #[serde(rename = "MemoryMiB", default)]
    pub memory_mib: Option<u64>,
}

/// A nitro-cli failure: `[ E19 ] File operation failure. …` and the detail line after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CliError {
    /// `E19`.
    pub code: String,
    /// The number, which is also nitro-cli's exit status.
    pub number: u16,
    /// The text after the code on the same line.
    pub message: String,
    /// The next non-empty line (e.g. `File: '/dev/nitro_enclaves', failing operation: 'Open'.`).
    pub detail: Option<String>,
    /// What the code means for this deployment.
    pub meaning: &'static str,
}

/// What an `Exx` code means here (from the nitro-cli error reference and DESIGN.md).
pub fn error_meaning(number: u16) -> &'static str {
    match number {
        11 => "signing certificate problem (with E36/E39: expired signing certificate)",
        19 => "file operation failed: on /dev/nitro_enclaves the device is missing in the pod",
        26 => "enclave memory is below 4x the EIF size",
        27 => "more memory asked than the allocator reserved (allocator.yaml memory_mib)",
        35 => "hugepages missing in the pod",
        36 => "signature or certificate check failed (with E39/E11: expired signing certificate)",
        39 => "signing certificate not valid (with E36/E11: expired signing certificate)",
        _ => "see https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html",
    }
}

impl CliError {
    /// The first `[ Exx ]` in the text is the cause (later codes follow from it).
    pub fn parse(stderr: &str) -> Option<CliError> {
        let mut lines = stderr.lines();
        while let Some(line) = lines.next() {
            let Some(rest) = line.trim_start().strip_prefix("[ E") else {
                continue;
            };
            let Some((num, message)) = rest.split_once(" ]") else {
                continue;
            };
            let Ok(number) = num.trim().parse::<u16>() else {
                continue;
            };
            let detail = lines
                .by_ref()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .filter(|l| !l.starts_with("For more details") && !l.starts_with("[ E"))
                .map(str::to_owned);
            return Some(CliError {
                code: format!("E{number:02}"),
                number,
                message: message.trim().to_owned(),
                detail,
                meaning: error_meaning(number),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const E19: &str = "[ E19 ] File operation failure. Such error appears when the system fails.\nFile: '/dev/nitro_enclaves', failing operation: 'Open'.\n\nFor more details, please visit https://docs.aws.amazon.com/enclaves/latest/user/cli-errors.html#E19\n";

    #[test]
    fn parses_the_error_layout() {
        let e = CliError::parse(E19).unwrap();
        assert_eq!(e.code, "E19");
        assert_eq!(e.number, 19);
        assert!(e.message.starts_with("File operation failure."));
        assert_eq!(
            e.detail.as_deref(),
            Some("File: '/dev/nitro_enclaves', failing operation: 'Open'.")
        );
        assert!(e.meaning.contains("device is missing"));
    }

    #[test]
    fn first_code_is_the_cause() {
        let e = CliError::parse("[ E36 ] Sig.\n\n[ E39 ] Cert.\n[ E11 ] X.\n").unwrap();
        assert_eq!(e.code, "E36");
        assert_eq!(e.detail, None);
    }

    #[test]
    fn no_code_is_none() {
        assert_eq!(CliError::parse("Start allocating memory...\n"), None);
        assert_eq!(CliError::parse("[ Exx ] broken\n"), None);
        assert_eq!(CliError::parse(""), None);
    }

    #[test]
    fn run_enclave_json_is_lenient() {
        let j = r#"{"EnclaveName":"cc","EnclaveID":"i-1-enc2","ProcessID":7,"EnclaveCID":16,
            "NumberOfCPUs":2,"CPUIDs":[1,17],"MemoryMiB":3524,"Future":"ignored"}"#;
        let r: RunEnclave = serde_json::from_str(j).unwrap();
        assert_eq!(r.enclave_cid, 16);
        assert_eq!(r.cpu_ids, [1, 17]);
        let legacy: RunEnclave =
            serde_json::from_str(r#"{"EnclaveID":"i-1-enc2","EnclaveCID":5}"#).unwrap();
        assert_eq!(legacy.enclave_name, None);
    }
}

/// The image measurements nitro-cli prints (hex strings as printed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CliMeasurements {
    #[serde(rename = "HashAlgorithm", default)]
    pub hash_algorithm: Option<String>,
    #[serde(rename = "PCR0", default)]
    pub pcr0: Option<String>,
    #[serde(rename = "PCR1", default)]
    pub pcr1: Option<String>,
    #[serde(rename = "PCR2", default)]
    pub pcr2: Option<String>,
    #[serde(rename = "PCR8", default)]
    pub pcr8: Option<String>,
}

/// One element of `nitro-cli describe-enclaves`: what `run-enclave` prints, plus state, flags
/// and (newer versions) measurements. Unknown fields are ignored; fields that older versions
/// do not print (`EnclaveName`, `Measurements`) are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribedEnclave {
    #[serde(flatten)]
    pub enclave: RunEnclave,
    /// `RUNNING`, `TERMINATING`, `EMPTY`.
    #[serde(rename = "State")]
    pub state: String,
    /// `NONE` or `DEBUG_MODE`.
    #[serde(rename = "Flags", default)]
    pub flags: String,
    #[serde(rename = "Measurements", default)]
    pub measurements: Option<CliMeasurements>,
}

impl std::ops::Deref for DescribedEnclave {
    type Target = RunEnclave;
    fn deref(&self) -> &RunEnclave {
        &self.enclave
    }
}

impl DescribedEnclave {
    /// In debug mode the attested PCRs are all zero, whatever `Measurements` says.
    pub fn debug_mode(&self) -> bool {
        self.flags.split(['|', ' ', ',']).any(|f| f == "DEBUG_MODE")
    }

    pub fn running(&self) -> bool {
        self.state == "RUNNING"
    }
}

/// Parse `describe-enclaves` stdout: a JSON array (`[]` when nothing runs).
pub fn parse_describe_enclaves(stdout: &str) -> Result<Vec<DescribedEnclave>, String> {
    serde_json::from_str(stdout.trim()).map_err(|e| {
        format!("nitro-cli describe-enclaves output is not the expected JSON array: {e}")
    })
}

#[cfg(test)]
mod describe_tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../shared/fixtures/nitro-cli")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn parses_every_fixture() {
        let running = parse_describe_enclaves(&fixture("describe-enclaves.running.json")).unwrap();
        assert_eq!(running.len(), 1);
        assert!(running[0].running() && !running[0].debug_mode());
        assert_eq!(running[0].enclave_cid, 16);
        assert!(running[0].measurements.as_ref().unwrap().pcr8.is_some());
        let debug = parse_describe_enclaves(&fixture("describe-enclaves.debug.json")).unwrap();
        assert!(debug[0].debug_mode());
        let legacy = parse_describe_enclaves(&fixture("describe-enclaves.legacy.json")).unwrap();
        assert!(legacy[0].measurements.is_none() && legacy[0].enclave_name.is_none());
        assert!(
            parse_describe_enclaves(&fixture("describe-enclaves.empty.json"))
                .unwrap()
                .is_empty()
        );
        let e19 = CliError::parse(&fixture("error.E19.stderr.txt")).unwrap();
        assert_eq!(
            (e19.number, e19.detail.as_deref()),
            (
                19,
                Some("File: '/dev/nitro_enclaves', failing operation: 'Open'.")
            )
        );
        let e27 = CliError::parse(&fixture("error.E27.stderr.txt")).unwrap();
        assert_eq!(e27.code, "E27");
        assert!(
            parse_describe_enclaves("not json")
                .unwrap_err()
                .contains("not the expected JSON")
        );
    }
}
