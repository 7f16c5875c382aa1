//! Measurements: one PCR value (48 bytes, SHA-384), and a set of them by register index. This
//! is the one place that says what a measurement looks like (96 hex digits) and what the
//! debug-mode value is (all zeros); the wire formats (nitro-cli JSON, `/status`, attestation
//! documents, EIF headers) convert to [`PcrSet`] at their edge.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Length of a PCR value in bytes (SHA-384).
pub const PCR_LEN: usize = 48;

/// One PCR value. Serialised as 96 lowercase hex digits; parsed case-insensitively.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pcr(pub [u8; PCR_LEN]);

/// What is wrong with a text that should be a measurement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 96 hex digits (SHA-384), got {got}")]
pub struct PcrError {
    /// "12 characters", "a non-hex character 'g'", ...
    pub got: String,
}

impl Pcr {
    /// The value every PCR has in an enclave started with `--debug-mode`.
    pub const ZERO: Pcr = Pcr([0; PCR_LEN]);

    /// 96 hex digits (either case), nothing else.
    pub fn parse(s: &str) -> Result<Pcr, PcrError> {
        if s.len() != 2 * PCR_LEN {
            return Err(PcrError {
                got: format!("{} characters", s.chars().count()),
            });
        }
        if let Some(c) = s.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(PcrError {
                got: format!("a non-hex character {c:?}"),
            });
        }
        let mut b = [0u8; PCR_LEN];
        hex::decode_to_slice(s, &mut b).map_err(|e| PcrError { got: e.to_string() })?;
        Ok(Pcr(b))
    }

    /// Is `s` a well-formed measurement (96 hex digits)?
    pub fn is_valid(s: &str) -> bool {
        Pcr::parse(s).is_ok()
    }

    pub fn from_bytes(b: &[u8]) -> Option<Pcr> {
        <[u8; PCR_LEN]>::try_from(b).ok().map(Pcr)
    }

    /// All zeros: the enclave runs in debug mode (or the register is unused).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; PCR_LEN]
    }

    /// 96 lowercase hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 16 hex digits and an ellipsis, for tables.
    pub fn short(&self) -> String {
        format!("{}…", &self.hex()[..16])
    }
}

impl fmt::Display for Pcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Pcr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pcr({})", self.hex())
    }
}

impl FromStr for Pcr {
    type Err = PcrError;
    fn from_str(s: &str) -> Result<Pcr, PcrError> {
        Pcr::parse(s)
    }
}

impl serde::Serialize for Pcr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.hex())
    }
}

impl<'de> serde::Deserialize<'de> for Pcr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pcr, D::Error> {
        let s = String::deserialize(d)?;
        Pcr::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// PCR values by register index (0 image, 1 kernel, 2 application, 8 signing certificate).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct PcrSet(pub BTreeMap<u8, Pcr>);

impl PcrSet {
    pub fn new() -> PcrSet {
        PcrSet::default()
    }

    pub fn get(&self, index: u8) -> Option<Pcr> {
        self.0.get(&index).copied()
    }

    pub fn set(&mut self, index: u8, v: Pcr) {
        self.0.insert(index, v);
    }

    pub fn with(mut self, index: u8, v: Pcr) -> PcrSet {
        self.0.insert(index, v);
        self
    }

    /// PCR0 present and all zeros: an enclave in debug mode.
    pub fn is_debug(&self) -> bool {
        self.get(0).is_some_and(|p| p.is_zero())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// From `"PCR0"`/`"0"` → hex pairs (the `/status` and nitro-cli shape); keys that are not
    /// PCR indexes and values that are not measurements are errors naming them.
    pub fn from_named<'a>(
        items: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<PcrSet, String> {
        let mut out = PcrSet::new();
        for (k, v) in items {
            let idx = k
                .strip_prefix("PCR")
                .unwrap_or(k)
                .parse::<u8>()
                .map_err(|_| format!("'{k}' is not a PCR name (PCR0..PCR31)"))?;
            let p = Pcr::parse(v).map_err(|e| format!("{k}: {e}"))?;
            out.set(idx, p);
        }
        Ok(out)
    }

    /// From an attestation document's register map (index → bytes); registers that are not
    /// 48 bytes long are skipped.
    pub fn from_registers(regs: &BTreeMap<u16, Vec<u8>>) -> PcrSet {
        PcrSet(
            regs.iter()
                .filter_map(|(i, b)| Some((u8::try_from(*i).ok()?, Pcr::from_bytes(b)?)))
                .collect(),
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (u8, Pcr)> + '_ {
        self.0.iter().map(|(i, p)| (*i, *p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_validator() {
        let h = "Ab".repeat(48);
        let p = Pcr::parse(&h).unwrap();
        assert_eq!(p.hex(), "ab".repeat(48));
        assert_eq!(p.short(), "abababababababab…");
        assert_eq!(
            Pcr::parse("abc").unwrap_err().to_string(),
            "expected 96 hex digits (SHA-384), got 3 characters"
        );
        assert!(
            Pcr::parse(&"g".repeat(96))
                .unwrap_err()
                .to_string()
                .contains("non-hex character 'g'")
        );
        assert!(Pcr::parse(&"0".repeat(96)).unwrap().is_zero());
        assert_eq!(Pcr::ZERO.hex(), "0".repeat(96));
    }

    #[test]
    fn serde_is_hex_and_sets_convert() {
        let p = Pcr([7; 48]);
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(j, format!("\"{}\"", "07".repeat(48)));
        assert_eq!(serde_json::from_str::<Pcr>(&j).unwrap(), p);
        assert!(serde_json::from_str::<Pcr>("\"07\"").is_err());
        let s = PcrSet::from_named([("PCR0", "00".repeat(48).as_str()), ("8", &"11".repeat(48))])
            .unwrap();
        assert!(s.is_debug());
        assert_eq!(s.get(8), Some(Pcr([0x11; 48])));
        assert!(PcrSet::from_named([("X1", "00")]).is_err());
        let regs = BTreeMap::from([(0u16, vec![1u8; 48]), (1, vec![2u8; 3])]);
        let r = PcrSet::from_registers(&regs);
        assert_eq!(r.get(0), Some(Pcr([1; 48])));
        assert_eq!(r.get(1), None);
        assert_eq!(
            serde_json::to_string(&PcrSet::new().with(0, Pcr([0; 48]))).unwrap(),
            format!("{{\"0\":\"{}\"}}", "00".repeat(48))
        );
    }
}
